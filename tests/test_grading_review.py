"""Decide only on evidence: lit screens are no damage, weak cracks go to a technician's review."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config.model import GradingConfig, ModelConfig
from edge.grade import Grader
from edge.grade.runtime import load_meta
from edge.synth import render_scene
from tests.test_grading_pipeline import cracked_photos

# int8 probabilities never reach this, so every crack is weak evidence.
ABOVE_ANY_PROBABILITY = 0.9999


@pytest.fixture(scope="module")
def grader() -> Grader:
    return Grader(ModelConfig(threads=2), GradingConfig())


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_lit_screen_content_on_an_intact_phone_is_no_crack(grader: Grader, seed: int) -> None:
    # Wallpapers with hard edges, app icons, text and a clock: all sharp lines, none of them damage.
    kw = {"fill": 0.8, "blur_sigma": 0.0, "exposure": 1.0, "jpeg_quality": 90, "colour": "black"}
    r = render_scene(np.random.default_rng([8, seed]), 1920, 1080, face="front", defects={}, screen_on=True, **kw)  # type: ignore[arg-type]
    result = grader.grade([("front", r.jpeg)])
    front = result.analysis["front"]
    assert result.status == "graded", result.reason
    assert [d for d in front.defects if d.kind == "crack"] == []
    assert result.grade == "A", front.defects


def test_a_long_crack_on_dark_glass_is_graded_by_the_booth_alone(grader: Grader) -> None:
    # Its line crosses most of its cells: evidence enough for the committed crack_confirm.
    result = grader.grade([("front", cracked_photos(1)[0])])
    assert (result.status, result.grade) == ("graded", "D"), result.reason
    cracks = [d for d in result.analysis["front"].defects if d.kind == "crack"]
    crack_confirm = load_meta(ModelConfig().path.with_suffix(".json")).thresholds["crack_confirm"]
    assert cracks and max(d.confidence for d in cracks) >= crack_confirm


def test_crack_on_weak_evidence_goes_to_review_with_a_provisional_grade() -> None:
    doubtful = Grader(ModelConfig(threads=2, thresholds={"crack_confirm": ABOVE_ANY_PROBABILITY}), GradingConfig())
    result = doubtful.grade([("front", cracked_photos(1)[0])])
    assert result.status == "review"
    assert result.grade is None
    assert result.provisional_grade == "D"
    assert result.reason is not None
    assert result.reason.startswith("possible crack across ")
    assert result.reason.endswith("check by eye")
    assert any(d.kind == "crack" for d in result.analysis["front"].defects)


def test_crack_on_strong_evidence_is_graded_without_review() -> None:
    confident = Grader(ModelConfig(threads=2, thresholds={"crack_confirm": 0.01}), GradingConfig())
    result = confident.grade([("front", cracked_photos(1)[0])])
    assert result.status == "graded"
    assert result.grade == "D"
    assert result.provisional_grade is None
