"""The CTIA-style cosmetic grade A-E from the defects of each face; the device takes the worst."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from edge.config.model import GradingConfig
from edge.contract import GRADES, Defect, Grade


def shattered(defects: Sequence[Defect], cfg: GradingConfig) -> bool:
    """A web of cracks: many, or more than one spread over much of the face. One crack is cracked
    glass (D) however long: a diagonal's box covers most of the face."""
    cracks = [d for d in defects if d.kind == "crack"]
    cover = sum((d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) for d in cracks)
    return len(cracks) >= cfg.shattered_crack_count or (len(cracks) > 1 and cover >= cfg.shattered_area_fraction)


def face_grade(defects: Sequence[Defect], cfg: GradingConfig) -> Grade:
    """Dirt never counts; a glass crack forces D at best, a shattered face E."""
    if shattered(defects, cfg):
        return "E"
    if any(d.kind == "crack" for d in defects):
        return "D"
    scratches = [d for d in defects if d.kind == "scratch"]
    deep = sum(d.severity == "deep" for d in scratches)
    light = [d for d in scratches if d.severity != "deep"]
    longest = max((d.length_mm for d in light), default=0.0)
    chips = sum(d.kind == "chip" for d in defects)
    if deep > cfg.c_max_deep_scratches:
        return "D"
    if deep or len(light) > cfg.b_max_scratches or longest > cfg.b_max_scratch_mm or chips > cfg.b_max_chips:
        return "C"
    if len(light) > cfg.a_max_scratches or longest > cfg.a_max_scratch_mm or chips:
        return "B"
    return "A"


def device_grade(faces: Iterable[Grade]) -> Grade:
    return max(faces, key=GRADES.index, default="A")
