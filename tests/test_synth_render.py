"""The renderer: deterministic, with ground truth that matches what it drew."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.contract import DEFECT_KINDS
from edge.synth import render_scene
from edge.synth.demo_images import PLAN, write_demo_images


def test_same_seed_same_photo() -> None:
    a = render_scene(np.random.default_rng(5), 640, 480)
    b = render_scene(np.random.default_rng(5), 640, 480)
    c = render_scene(np.random.default_rng(6), 640, 480)
    assert a.jpeg == b.jpeg
    assert a.jpeg != c.jpeg


def test_masks_follow_the_requested_defects() -> None:
    r = render_scene(np.random.default_rng(11), 1280, 720, defects={"crack": 1}, fill=0.8)
    assert r.masks["crack"].any()
    assert not r.masks["scratch"].any() and not r.masks["dirt"].any()
    # The damage lies on the device: inside its quad.
    inside = np.zeros(r.masks["crack"].shape, np.uint8)
    cv2.fillPoly(inside, [np.round(r.quad).astype(np.int32)], 255)
    inside = cv2.dilate(inside, np.ones((3, 3), np.uint8))  # the quad was rounded to whole pixels
    assert (r.masks["crack"] & ~inside).sum() == 0
    assert [t.kind for t in r.truth] == ["crack"]


def test_clean_render_has_no_labels_and_a_sane_scale() -> None:
    r = render_scene(np.random.default_rng(3), 1280, 720, defects={}, fill=0.85)
    assert all(not r.masks[c].any() for c in DEFECT_KINDS)
    long_px = np.linalg.norm(r.quad[3] - r.quad[0])
    assert 130 < long_px * r.mm_per_px < 170  # a phone's length in mm


def test_empty_booth_has_no_device() -> None:
    r = render_scene(np.random.default_rng(4), 640, 480, with_device=False)
    assert r.quad is None
    assert r.image.shape == (480, 640, 3)


def test_demo_images_are_deterministic_jpegs(tmp_path: Path) -> None:
    first = write_demo_images(tmp_path / "a", 640, 360)
    second = write_demo_images(tmp_path / "b", 640, 360)
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    assert len(first) == 2 * len(PLAN)
    assert (tmp_path / "a" / "front" / "00.jpg").exists() and (tmp_path / "a" / "back" / "05.jpg").exists()
    for p, q in zip(first, second, strict=True):
        assert p.read_bytes()[:3] == b"\xff\xd8\xff"
        assert p.read_bytes() == q.read_bytes()
