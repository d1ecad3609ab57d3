"""The split and the judging rules of the real-photo measurement, on labels made here (no photos)."""

from __future__ import annotations

from pathlib import Path

from edge.contract import BoothSectionAnalysis, Defect
from edge.grade import SessionGrade
from edge.train.labelled_photos import Answer, Photo, load_labels, pick_crack_confirm, pick_dirt, split


def labels_csv(tmp_path: Path) -> Path:
    rows = ["file,label,booth_like,source_repo,source_path,licence"]
    rows += [f"msd/oil/Oil_{i:04d}.jpg,oil,1,r,p,l" for i in range(9)]
    rows += [f"web/damaged/{i:08d}.jpg,damaged,{i % 2},r,p,l" for i in range(8)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_split_trains_only_on_msd_and_halves_the_others_by_group(tmp_path: Path) -> None:
    photos = load_labels(labels_csv(tmp_path))
    parts = split(photos)
    assert {parts[p.file] for p in photos if p.file.startswith("msd/")} == {"train", "holdout"}
    assert sum(parts[p.file] == "train" for p in photos) == 6  # two thirds of nine MSD photos
    for booth_like in (True, False):
        web = [parts[p.file] for p in photos if not p.trainable and p.booth_like == booth_like]
        assert sorted(web) == ["calib", "calib", "holdout", "holdout"]
    assert split(reversed(photos)) == parts  # a function of the names alone


def answer(label: str, status: str, grade: str | None, kinds: list[str], recs: tuple[str, ...] = ()) -> Answer:
    box = (0.0, 0.0, 1.0, 1.0)
    defects = [
        Defect(kind=k, length_mm=5, width_mm=0.1, area_mm2=1, place="centre", confidence=0.95, box=box, image_index=0)  # type: ignore[arg-type]
        for k in kinds
    ]
    analysis = BoothSectionAnalysis(score=50, issues=[], recommendations=list(recs), defects=defects)
    final, provisional = (grade, None) if status == "graded" else (None, grade)
    res = SessionGrade({"front": analysis}, final, status, None, [], {}, provisional)  # type: ignore[arg-type]
    return Answer.of(Photo("web/x.jpg", label, True), res)


def test_judging_rules_follow_the_readme() -> None:
    assert answer("damaged", "graded", "D", ["crack"]).right
    assert not answer("damaged", "review", "D", ["crack"]).right  # a review is never right
    bad = answer("not_damaged", "graded", "D", ["crack"])
    assert bad.severe and not bad.right
    assert not answer("not_damaged", "review", "D", ["crack"]).severe  # kept apart: no grade given
    assert answer("good", "graded", "B", ["scratch"]).right
    assert not answer("good", "retake", None, []).right
    assert answer("oil", "graded", "A", ["dirt"], ("clean screen and retake",)).right
    assert not answer("oil", "graded", "A", ["dirt", "scratch"], ("clean screen and retake",)).right
    assert answer("scratch", "graded", "C", ["scratch"]).right
    assert answer("scratch", "graded", "D", ["crack", "scratch"]).severe


def test_crack_confirm_is_picked_above_every_false_crack() -> None:
    def cracked(label: str, confidence: float) -> Answer:
        a = answer(label, "graded", "D", ["crack"])
        return Answer(a.photo, a.status, a.grade, a.kinds, a.clean_and_retake, a.summary, confidence)

    answers = [cracked("damaged", 0.99), cracked("damaged", 0.97), cracked("not_damaged", 0.8)]
    t = pick_crack_confirm(answers)
    assert 0.8 < t <= 0.97
    assert [a.confirmed_at(t).status for a in answers] == ["graded", "graded", "review"]


def test_dirt_threshold_is_picked_to_find_smears_without_needless_cleaning() -> None:
    clean = ("clean screen and retake",)

    def graded(t: float) -> list[Answer]:
        # Lower thresholds find the oil drop from 0.8 down and the stain from 0.6 down, but below
        # 0.7 they also tell an intact phone to clean its screen.
        return [
            answer("oil", "graded", "A", ["dirt"] if t <= 0.8 else [], clean if t <= 0.8 else ()),
            answer("stain", "graded", "A", ["dirt"] if t <= 0.6 else [], clean if t <= 0.6 else ()),
            answer("good", "graded", "A", ["dirt"] if t < 0.7 else [], clean if t < 0.7 else ()),
            answer("good", "graded", "A", ["dirt"] if t < 0.7 else [], clean if t < 0.7 else ()),
        ]

    assert pick_dirt(graded, (0.9, 0.8, 0.7, 0.6, 0.5)) == 0.8
