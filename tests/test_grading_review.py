"""Decide only on evidence: lit screens are no damage, weak cracks go to a technician's review."""

from __future__ import annotations

import pytest

from edge.config.model import GradingConfig, ModelConfig
from edge.grade import Grader
from tests.test_grading_pipeline import cracked_photos

# int8 probabilities never reach this, so every crack is weak evidence.
ABOVE_ANY_PROBABILITY = 0.9999


@pytest.fixture(scope="module")
def grader() -> Grader:
    return Grader(ModelConfig(threads=2), GradingConfig())


def test_crack_on_weak_evidence_goes_to_review_with_a_provisional_grade() -> None:
    doubtful = Grader(ModelConfig(threads=2, thresholds={"crack_confirm": ABOVE_ANY_PROBABILITY}), GradingConfig())
    result = doubtful.grade([("front", cracked_photos(1)[0])])
    assert result.status == "review"
    assert result.grade is None
    assert result.provisional_grade in ("D", "E")
    assert result.reason is not None
    assert result.reason.startswith("possible crack across ")
    assert result.reason.endswith("check by eye")
    assert any(d.kind == "crack" for d in result.analysis["front"].defects)


def test_crack_on_strong_evidence_is_graded_without_review(grader: Grader) -> None:
    confident = Grader(ModelConfig(threads=2, thresholds={"crack_confirm": 0.01}), GradingConfig())
    result = confident.grade([("front", cracked_photos(1)[0])])
    assert result.status == "graded"
    assert result.grade in ("D", "E")
    assert result.provisional_grade is None
