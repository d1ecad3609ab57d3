"""Defects of one section -> the contract's score, human issues and recommendations."""

from __future__ import annotations

from collections.abc import Sequence

from edge.config.model import GradingConfig
from edge.contract import Defect
from edge.grade.scale import shattered

_SURFACE = {"front": "screen", "back": "back"}


def surface_name(section: str) -> str:
    return _SURFACE.get(section, section.replace("_", " ").replace("-", " "))


def mm_text(v: float) -> str:
    return f"{v:.1f} mm" if v < 10 else f"{v:.0f} mm"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'es' if word.endswith('ch') else 's'}" if n != 1 else f"1 {word}"


def describe(section: str, defects: Sequence[Defect], cfg: GradingConfig) -> tuple[int, list[str], list[str]]:
    surface = surface_name(section)
    issues: list[str] = []
    recs: list[str] = []
    cracks = [d for d in defects if d.kind == "crack"]
    scratches = [d for d in defects if d.kind == "scratch"]
    deep = [d for d in scratches if d.severity == "deep"]
    light = [d for d in scratches if d.severity != "deep"]
    chips = [d for d in defects if d.kind == "chip"]
    is_shattered = shattered(defects, cfg)
    if is_shattered:
        issues.append(f"{surface} shattered: {_plural(len(cracks), 'crack')}")
    else:
        issues.extend(f"crack across {d.place} of {surface}, {mm_text(d.length_mm)}" for d in cracks)
    issues.extend(f"deep scratch on {d.place} of {surface}, {mm_text(d.length_mm)}" for d in deep)
    if len(light) == 1:
        issues.append(f"light scratch on {light[0].place} of {surface}, {mm_text(light[0].length_mm)}")
    elif light:
        longest = max(d.length_mm for d in light)
        issues.append(f"{len(light)} light scratches on {surface}, longest {mm_text(longest)}")
    if len(chips) == 1:
        issues.append(f"chip or dent on the frame edge at {chips[0].place}")
    elif chips:
        issues.append(f"{len(chips)} chips or dents on the frame edges")

    if cracks:
        recs.append(f"replace the cracked {surface} glass before resale")
    if deep:
        recs.append(f"deep scratches on the {surface}: consider a glass replacement")
    if chips:
        recs.append("check the frame edges by hand for sharp chips")
    if any(d.kind == "dirt" for d in defects):
        recs.append(f"clean {surface} and retake")

    score = 100.0
    score -= cfg.penalty_crack * len(cracks)
    score -= cfg.penalty_deep_scratch * len(deep)
    score -= cfg.penalty_light_scratch * len(light)
    score -= cfg.penalty_scratch_per_mm * sum(d.length_mm for d in scratches)
    score -= cfg.penalty_chip * len(chips)
    if is_shattered:
        score = min(score, cfg.shattered_score)
    return max(0, min(100, round(score))), issues, recs
