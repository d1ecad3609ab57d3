"""The empty-booth reference: `edge-grader calibrate` stores it, the locator finds white on white with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.grade.locate import locate
from edge.grade.reference import load_reference, reference_path
from edge.synth import render_scene
from tests.booth_support import REPO, write_config
from tests.test_grading_locate import corner_error

WHITE_ON_WHITE = {
    "face": "back",
    "colour": "white",
    "defects": {},
    "fill": 0.6,
    "blur_sigma": 0.0,
    "exposure": 1.0,
    "variety": True,
}


def white_phone_on_white_shelf() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo, empty booth, device corners): the same shelf and light, with and without the phone."""
    r = render_scene(np.random.default_rng([3, 5]), 1280, 720, **WHITE_ON_WHITE)  # type: ignore[arg-type]
    empty = render_scene(np.random.default_rng([3, 5]), 1280, 720, with_device=False, **WHITE_ON_WHITE).image  # type: ignore[arg-type]
    assert r.quad is not None
    inside = np.zeros(r.image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.int32(r.quad)], 1)
    return np.where(inside[..., None] > 0, r.image, empty), empty, r.quad


def test_white_phone_on_white_is_found_only_against_the_empty_booth() -> None:
    photo, empty, quad = white_phone_on_white_shelf()
    assert locate(photo, 0.03, (1.6, 2.6)) is None
    found = locate(photo, 0.03, (1.6, 2.6), empty)
    assert found is not None
    assert corner_error(found.quad, quad) / 1280 < 0.025
    assert locate(empty, 0.03, (1.6, 2.6), empty) is None


def calibrate(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "edge.cli", "calibrate", "--config", str(config), *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)


def test_calibrate_stores_the_empty_booth_and_refuses_a_phone_in_view(tmp_path: Path) -> None:
    _, empty, _ = white_phone_on_white_shelf()
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    cv2.imwrite(str(shelf / "empty.png"), empty)
    config = write_config(tmp_path / "booth", shelf)
    done = calibrate(config, "--camera", "cam")
    assert done.returncode == 0, done.stderr
    stored = load_reference(tmp_path / "booth" / "state", "cam")
    assert stored is not None and np.array_equal(stored, empty)

    (shelf / "empty.png").unlink()
    dark_phone = render_scene(np.random.default_rng(9), 1280, 720, face="front", colour="black", defects={}, fill=0.6)
    cv2.imwrite(str(shelf / "phone.png"), dark_phone.image)
    before = reference_path(tmp_path / "booth" / "state", "cam").read_bytes()
    refused = calibrate(config, "--camera", "cam")
    assert refused.returncode == 1
    assert "empty the booth" in refused.stderr
    assert reference_path(tmp_path / "booth" / "state", "cam").read_bytes() == before

    unknown = calibrate(config, "--camera", "nope")
    assert unknown.returncode == 2
    assert "no camera 'nope'" in unknown.stderr
