"""The labelled real photos: loading, the fixed split, and the rules by which answers are judged.

The folder is never part of the repository (its photos are not ours to ship); the training script
and ``bench/bench_real.py`` take it as an argument. Only MSD photos (GPL-3.0) may train the model;
the web and hand-held ones may pick thresholds and measure. The split is a pure function of the
file names, so it is the same on every machine and needs no list beside the photos:

- ``train``: two thirds of each MSD label; the model may learn from them;
- ``calib``: half of each (label, booth_like) group of the other photos; thresholds are picked here;
- ``holdout``: the rest; only ever measured, and the figures the model card reports.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path
from typing import Literal

from edge.grade.pipeline import Grader, SessionGrade

Part = Literal["train", "calib", "holdout"]
LABELS = ("damaged", "good", "not_damaged", "oil", "stain", "scratch")
NO_CRACK = frozenset({"good", "not_damaged", "oil", "stain", "scratch"})
DAMAGE_KINDS = frozenset({"crack", "scratch", "chip"})
MSD_TRAIN_FRACTION = 2 / 3


@dataclass(frozen=True)
class Photo:
    file: str
    label: str
    booth_like: bool

    @property
    def trainable(self) -> bool:
        return self.file.startswith("msd/")


def load_labels(folder: Path) -> list[Photo]:
    with (folder / "labels.csv").open(newline="") as f:
        return [Photo(r["file"], r["label"], r["booth_like"] == "1") for r in csv.DictReader(f)]


def _key(photo: Photo) -> str:
    return hashlib.sha256(photo.file.encode()).hexdigest()


def split(photos: Iterable[Photo]) -> dict[str, Part]:
    """Each photo's part, stratified by label (and booth_like), ordered by a hash of its name."""
    parts: dict[str, Part] = {}
    ordered = sorted(photos, key=lambda p: (p.trainable, p.label, p.booth_like, _key(p)))
    for (trainable, _, _), group in groupby(ordered, key=lambda p: (p.trainable, p.label, p.booth_like)):
        members = list(group)
        for i, photo in enumerate(members):
            if trainable:
                parts[photo.file] = "train" if i < round(len(members) * MSD_TRAIN_FRACTION) else "holdout"
            else:
                parts[photo.file] = "calib" if i % 2 == 0 else "holdout"
    return parts


@dataclass(frozen=True)
class Answer:
    """What the booth said of one photo, reduced to what the judging rules read."""

    photo: Photo
    status: str
    grade: str | None
    kinds: frozenset[str]
    clean_and_retake: bool
    summary: str
    crack_confidence: float  # the strongest crack's, 0 without one

    @classmethod
    def of(cls, photo: Photo, res: SessionGrade) -> Answer:
        a = res.analysis["front"]
        kinds = frozenset(d.kind for d in a.defects)
        clean = any(r.startswith("clean ") for r in a.recommendations)
        summary = "; ".join([*a.issues, *(r for r in a.recommendations if r.startswith("clean "))]) or "-"
        if res.reason:
            summary = f"{res.reason} ({summary})"
        crack = max((d.confidence for d in a.defects if d.kind == "crack"), default=0.0)
        return cls(photo, res.status, res.grade or res.provisional_grade, kinds, clean, summary, crack)

    def confirmed_at(self, crack_confirm: float) -> Answer:
        """The answer the pipeline gives with this crack_confirm, from one graded with every crack confirmed."""
        # A shattered face (grade E) is settled by its web of cracks, whatever their probability.
        if self.status != "graded" or self.grade == "E" or not 0 < self.crack_confidence < crack_confirm:
            return self
        return replace(self, status="review")

    @property
    def reports_crack(self) -> bool:
        return self.status == "graded" and ("crack" in self.kinds or self.grade in ("D", "E"))

    @property
    def severe(self) -> bool:
        """A crack or a D/E on a phone with no crack: the customer loses money."""
        return self.photo.label in NO_CRACK and self.reports_crack

    @property
    def right(self) -> bool:
        label = self.photo.label
        if self.status != "graded":
            return False
        if label == "damaged":
            return self.reports_crack
        if label in ("good", "not_damaged"):
            return self.grade in ("A", "B") and "crack" not in self.kinds
        if label in ("oil", "stain"):
            return self.clean_and_retake and not (self.kinds & DAMAGE_KINDS)
        return "scratch" in self.kinds

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.photo.file,
            "label": self.photo.label,
            "booth_like": self.photo.booth_like,
            "status": self.status,
            "grade": self.grade,
            "kinds": sorted(self.kinds),
            "right": self.right,
            "severe": self.severe,
            "crack_confidence": round(self.crack_confidence, 3),
            "summary": self.summary,
        }


def grade_photos(grader: Grader, folder: Path, photos: Iterable[Photo]) -> list[Answer]:
    """Each photo graded alone, as section "front"."""
    return [Answer.of(p, grader.grade([("front", (folder / p.file).read_bytes())])) for p in photos]


# A severe error costs the customer money and the shop its trust: worth many reviews.
SEVERE_COST = 5.0


def pick_crack_confirm(answers: Sequence[Answer]) -> float:
    """The crack_confirm that best trades severe errors, reviews and damage found on these answers.

    ``answers`` come from a pipeline that confirmed every crack; each candidate threshold sends the
    weaker ones to review. Cost: SEVERE_COST per severe error, 1 per review of a booth-like photo,
    -1 per damaged booth-like photo flagged. Ties go to the lower threshold (fewer reviews).
    """
    found = {round(a.crack_confidence, 3) for a in answers if a.crack_confidence}
    # Each confidence seen (cracks at it and above are confirmed), and one above them all.
    candidates = sorted(found | {round(max(found, default=0.5) + 0.001, 3)})

    def cost(t: float) -> float:
        sim = [a.confirmed_at(t) for a in answers]
        booth = [a for a in sim if a.photo.booth_like]
        return (
            SEVERE_COST * sum(a.severe for a in sim)
            + sum(a.status == "review" for a in booth)
            - sum(a.right for a in booth if a.photo.label == "damaged")
        )

    return min(candidates, key=lambda t: (cost(t), t))


# Dirt thresholds worth trying on real photos: the model's dirt probability is lower on real oil
# and stains than on the renders its metadata's threshold was picked on.
DIRT_CANDIDATES = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)


def dirt_cost(answers: Sequence[Answer]) -> int:
    """Oil and stain photos missed (no clean and retake, or damage reported) plus intact phones told
    to clean and retake: a missed smear hides the glass, a needless retake costs the customer time."""
    missed = sum(not a.right for a in answers if a.photo.label in ("oil", "stain"))
    needless = sum(a.clean_and_retake for a in answers if a.photo.label in ("good", "not_damaged"))
    return missed + needless


def pick_dirt(grade: Callable[[float], Sequence[Answer]], candidates: Sequence[float] = DIRT_CANDIDATES) -> float:
    """The dirt threshold of least ``dirt_cost`` on the answers ``grade(threshold)`` gives; ties go to
    the higher threshold (fewer clean-and-retakes)."""
    return min(candidates, key=lambda t: (dirt_cost(grade(t)), -t))


def _rate(n: int, d: int) -> str:
    return f"{n}/{d} = {n / d:.0%}" if d else "-"


def table(answers: Sequence[Answer]) -> str:
    """Per label and booth_like: photos, right, retake, review, severe errors; then the goal figures."""
    lines = [f"{'label':<12}{'booth-like':>11}{'photos':>8}{'right':>7}{'retake':>8}{'review':>8}{'severe':>8}"]
    for label in LABELS:
        for booth_like in (True, False):
            group = [a for a in answers if a.photo.label == label and a.photo.booth_like == booth_like]
            if not group:
                continue
            lines.append(
                f"{label:<12}{'yes' if booth_like else 'no':>11}{len(group):>8}"
                f"{sum(a.right for a in group):>7}{sum(a.status == 'retake' for a in group):>8}"
                f"{sum(a.status == 'review' for a in group):>8}{sum(a.severe for a in group):>8}"
            )
    booth = [a for a in answers if a.photo.booth_like]

    def right(*labels: str) -> str:
        group = [a for a in booth if a.photo.label in labels]
        return _rate(sum(a.right for a in group), len(group))

    doubt = sum(a.status in ("retake", "review") for a in booth)
    lines += [
        f"severe errors, all photos: {sum(a.severe for a in answers)} of {len(answers)}",
        f"damaged flagged (booth-like): {right('damaged')}",
        f"good / not_damaged A or B, no crack, not a retake (booth-like): {right('good', 'not_damaged')}",
        f"oil / stain clean and retake, no damage: {right('oil', 'stain')}",
        f"scratch reported: {right('scratch')}",
        f"retake + review (booth-like): {_rate(doubt, len(booth))}",
    ]
    return "\n".join(lines)
