"""Grade rules, scores and wording, on hand-made defects."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.config.model import GradingConfig
from edge.contract import Defect
from edge.grade.describe import describe
from edge.grade.detect import place_name
from edge.grade.scale import device_grade, face_grade

CFG = GradingConfig()


def defect(kind: str, length: float = 2.0, severity: str = "light", box: tuple = (0.1, 0.1, 0.2, 0.2)) -> Defect:
    return Defect(
        kind=kind, severity=severity, length_mm=length, width_mm=0.1, area_mm2=1.0, place="upper left",
        confidence=0.9, box=box, image_index=0,
    )  # fmt: skip


def test_clean_face_is_a_with_full_score() -> None:
    assert face_grade([], CFG) == "A"
    assert describe("front", [], CFG) == (100, [], [])


def test_crack_forces_d_and_names_place_and_length() -> None:
    faces = [defect("crack", 38.0, "deep")]
    assert face_grade(faces, CFG) == "D"
    score, issues, recs = describe("front", faces, CFG)
    assert issues == ["crack across upper left of screen, 38 mm"]
    assert score <= 100 - CFG.penalty_crack
    assert any("replace" in r for r in recs)


def test_many_cracks_are_shattered_e() -> None:
    faces = [defect("crack", 20.0, "deep", (0.1 * i, 0.1, 0.1 * i + 0.05, 0.2)) for i in range(3)]
    assert face_grade(faces, CFG) == "E"
    score, issues, _ = describe("back", faces, CFG)
    assert issues[0].startswith("back shattered")
    assert score <= CFG.shattered_score


def test_one_crack_across_the_face_is_cracked_glass_d_and_two_spread_over_it_are_shattered_e() -> None:
    # A diagonal's box covers most of the face: the box alone must not make one crack a web.
    diagonal = defect("crack", 120.0, "deep", (0.05, 0.05, 0.95, 0.9))
    assert face_grade([diagonal], CFG) == "D"
    score, issues, _ = describe("front", [diagonal], CFG)
    assert issues == ["crack across upper left of screen, 120 mm"]
    assert score == 100 - CFG.penalty_crack
    two = [defect("crack", 60.0, "deep", (0.05, y, 0.95, y + 0.4)) for y in (0.05, 0.5)]
    assert face_grade(two, CFG) == "E"


def test_dirt_recommends_cleaning_without_issue_or_penalty() -> None:
    faces = [defect("dirt", 0.0, "n/a")]
    assert face_grade(faces, CFG) == "A"
    score, issues, recs = describe("front", faces, CFG)
    assert (score, issues) == (100, [])
    assert recs == ["clean screen and retake"]


@pytest.mark.parametrize(
    ("scratches", "longest", "grade"),
    [(2, 2.0, "A"), (3, 2.0, "B"), (1, 5.0, "B"), (11, 2.0, "C"), (1, 25.0, "C")],
)
def test_scratch_counts_and_lengths(scratches: int, longest: float, grade: str) -> None:
    faces = [defect("scratch", longest if i == 0 else 1.0) for i in range(scratches)]
    assert face_grade(faces, CFG) == grade


def test_counted_scratches_in_words() -> None:
    _, issues, _ = describe("back", [defect("scratch", 4.0), defect("scratch", 2.5), defect("scratch", 1.2)], CFG)
    assert issues == ["3 light scratches on back, longest 4.0 mm"]


def test_deep_scratch_is_c_and_chip_is_b() -> None:
    assert face_grade([defect("scratch", 2.0, "deep")], CFG) == "C"
    assert face_grade([defect("chip", 2.0, "n/a")], CFG) == "B"


def test_device_takes_the_worst_face() -> None:
    assert device_grade(["A", "D", "B"]) == "D"


def test_places() -> None:
    assert place_name(0.1, 0.1) == "upper left"
    assert place_name(0.5, 0.5) == "centre"
    assert place_name(0.9, 0.5) == "middle right"
    assert place_name(0.5, 0.9) == "lower centre"


def test_config_rejects_unknown_keys_and_bad_ranges() -> None:
    with pytest.raises(ValidationError, match="extra"):
        GradingConfig(min_sharpnes=3)
    with pytest.raises(ValidationError, match="device_aspect"):
        GradingConfig(device_aspect=(2.5, 1.5))
    with pytest.raises(ValidationError, match="grade A"):
        GradingConfig(a_max_scratches=20)
