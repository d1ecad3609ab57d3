"""`edge-grader grade`: the real model on rendered photos, printing the contract's process answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.contract import BoothProcessResponse, ProcessResponse
from edge.synth import render_scene
from tests.booth_support import REPO, VALID_IMEI


def error_of(done: subprocess.CompletedProcess[str]) -> str:
    # The interpreter's runtime may print its own lines to stderr first; the error is the last line.
    return json.loads(done.stderr.strip().splitlines()[-1])["error"]


def grade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "grade", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-photos")
    rng = np.random.default_rng(11)
    made = {}
    for name, face, defects in (("front", "front", {}), ("back", "back", {"crack": 1})):
        render = render_scene(rng, 1920, 1080, face=face, defects=defects, blur_sigma=0.0, exposure=1.0)
        made[name] = folder / f"{name}.jpg"
        made[name].write_bytes(render.jpeg)
    return made


def test_json_answer_has_the_contract_keys_and_the_booth_fields(photos: dict[str, Path], tmp_path: Path) -> None:
    done = grade(
        "--imei",
        VALID_IMEI,
        "--section",
        f"front={photos['front']}",
        "--section",
        f"back={photos['back']}",
        "--json",
        "--overlays",
        str(tmp_path / "ov"),
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    ProcessResponse.model_validate(answer)
    booth = BoothProcessResponse.model_validate(answer)
    assert booth.imei == VALID_IMEI and set(booth.analysis) == {"front", "back"}
    assert {"decode", "inference", "total"} <= set(booth.timings_ms)
    assert booth.model.name == "booth-defects"
    assert [i.section for i in booth.images] == ["front", "back"]
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["back-1-overlay.jpg", "front-1-overlay.jpg"]


def test_human_output_names_each_section(photos: dict[str, Path]) -> None:
    done = grade("--imei", VALID_IMEI, "--section", f"front={photos['front']}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("session ") and "  front: " in done.stdout


def test_bad_imei_is_refused_in_the_error_form(photos: dict[str, Path]) -> None:
    done = grade("--imei", "123", "--section", f"front={photos['front']}")
    assert done.returncode == 2
    assert "15 digits" in error_of(done)


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not a photo")
    done = grade("--imei", VALID_IMEI, "--section", f"front={bogus}")
    assert done.returncode == 2
    assert error_of(done).startswith("Invalid request: image 0 of section 'front'")


def test_a_missing_model_stops_with_a_clear_error(photos: dict[str, Path], tmp_path: Path) -> None:
    done = grade("--imei", VALID_IMEI, "--section", f"front={photos['front']}", "--model", str(tmp_path / "x.tflite"))
    assert done.returncode == 1
    assert "model cannot be used" in error_of(done)


def test_malformed_section_argument_is_a_usage_error(photos: dict[str, Path]) -> None:
    done = grade("--imei", VALID_IMEI, "--section", str(photos["front"]))
    assert done.returncode == 2
    assert "expected SECTION=FILE" in done.stderr
