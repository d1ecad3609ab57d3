"""Cells to defects on hand-made probability grids: line evidence pooled, one kind per line, chips at the edge."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.config.model import GradingConfig
from edge.grade.detect import DEFECT_KINDS, Geometry, classify_cells, find_defects

CFG = GradingConfig()
GRID = (96, 48)  # rows, columns of 16 px cells over a 768x1536 crop
GEOM = Geometry(mm_x=0.1, mm_y=0.1, margin=0.03, stride=16)
THRESHOLDS = [0.9, 0.9, 0.7, 0.9]  # scratch, crack, chip, dirt


def grid(cells: dict[tuple[int, int], dict[str, float]]) -> np.ndarray:
    """Per-cell probabilities: 'none' takes whatever the named kinds leave."""
    probs = np.zeros((*GRID, 5), np.float32)
    probs[..., 0] = 1.0
    for (r, c), kinds in cells.items():
        for kind, p in kinds.items():
            probs[r, c, DEFECT_KINDS.index(kind) + 1] = p
        probs[r, c, 0] = 1.0 - sum(kinds.values())
    return probs


def crop_with_line(rows: range, col: int) -> np.ndarray:
    """A dark crop with a thin bright line through the given cells, so the pixels stand out."""
    crop = np.full((1536, 768, 3), 20, np.uint8)
    cv2.line(crop, (col * 16 + 8, rows.start * 16), (col * 16 + 8, rows.stop * 16), (200, 200, 200), 2)
    return crop


def test_split_line_evidence_passes_on_its_sum() -> None:
    # Neither kind alone reaches 0.9, but the cell is a line with 0.95 certainty.
    probs = grid({(10, 10): {"scratch": 0.5, "crack": 0.45}})
    labels = classify_cells(probs, THRESHOLDS)
    assert labels[10, 10] == DEFECT_KINDS.index("scratch") + 1
    assert int((labels > 0).sum()) == 1


def test_weak_line_evidence_stays_clean() -> None:
    probs = grid({(10, 10): {"scratch": 0.4, "crack": 0.3}})
    assert not classify_cells(probs, THRESHOLDS).any()


def test_one_line_takes_one_kind_by_its_summed_probability() -> None:
    # A long line whose cells flip between scratch and crack is one scratch: most evidence says so.
    mostly, sometimes = {"scratch": 0.7, "crack": 0.25}, {"scratch": 0.4, "crack": 0.55}
    cells = {(r, 20): mostly if r % 3 else sometimes for r in range(30, 60)}
    probs = grid(cells)
    defects = find_defects(probs, THRESHOLDS, crop_with_line(range(30, 60), 20), GEOM, CFG, 0)
    assert [d.kind for d in defects] == ["scratch"]
    assert defects[0].length_mm > 40
    assert defects[0].confidence == pytest.approx(0.95, abs=0.01)  # the pooled line evidence, not 0.7


def test_crack_evidence_on_a_line_from_the_edge_makes_a_crack() -> None:
    # Rows 2..40: the line starts at the device's top outline, as glass breaks from an edge.
    cells = {(r, 20): {"scratch": 0.3, "crack": 0.65} for r in range(2, 40)}
    defects = find_defects(grid(cells), THRESHOLDS, crop_with_line(range(2, 40), 20), GEOM, CFG, 0)
    assert [d.kind for d in defects] == ["crack"]


def test_one_smooth_line_inside_the_glass_is_a_scratch_whatever_the_model_says() -> None:
    cells = {(r, 20): {"scratch": 0.3, "crack": 0.65} for r in range(30, 60)}
    defects = find_defects(grid(cells), THRESHOLDS, crop_with_line(range(30, 60), 20), GEOM, CFG, 0)
    assert [d.kind for d in defects] == ["scratch"]


def test_branched_lines_inside_the_glass_stay_a_crack() -> None:
    crop = np.full((1536, 768, 3), 20, np.uint8)
    centre = (320, 720)
    for end in ((320, 400), (560, 960), (100, 980), (600, 560)):
        cv2.line(crop, centre, end, (200, 200, 200), 2)
    cells = {}
    for r in range(24, 62):
        for c in range(5, 38):
            if crop[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16].max() > 100:
                cells[(r, c)] = {"scratch": 0.3, "crack": 0.65}
    defects = find_defects(grid(cells), THRESHOLDS, crop, GEOM, CFG, 0)
    assert [d.kind for d in defects] == ["crack"]


def test_specks_with_line_evidence_are_no_scratch() -> None:
    # Dust: round specks where the model sees a line; nothing in the pixels is a stroke.
    crop = np.full((1536, 768, 3), 20, np.uint8)
    for r in range(30, 40, 2):
        cv2.circle(crop, (20 * 16 + 8, r * 16 + 8), 2, (200, 200, 200), -1)
    cells = {(r, 20): {"scratch": 0.95} for r in range(30, 40)}
    assert find_defects(grid(cells), THRESHOLDS, crop, GEOM, CFG, 0) == []


def test_a_line_on_dirt_is_reported_as_dirt() -> None:
    # The bright rim of an oil drop: line evidence, but the model also sees dirt all around it.
    cells = {(r, 20): {"scratch": 0.5, "crack": 0.45, "dirt": 0.04} for r in range(30, 45)}
    cells |= {(r, c): {"dirt": 0.6} for r in range(29, 46) for c in (19, 21)}
    defects = find_defects(grid(cells), THRESHOLDS, crop_with_line(range(30, 45), 20), GEOM, CFG, 0)
    assert {d.kind for d in defects} == {"dirt"}


def test_chip_is_kept_on_the_outline_and_ignored_inside() -> None:
    # Column 1 is inside the margin-to-outline band (the outline is at 3/106 of the width, ~cell 1.4);
    # column 12 is about 20 mm inside the device: a screen corner or camera ring, not a chip.
    crop = np.full((1536, 768, 3), 20, np.uint8)
    for c in (1, 12):
        cv2.circle(crop, (c * 16 + 8, 40 * 16 + 8), 6, (220, 220, 220), -1)
    edge = find_defects(grid({(40, 1): {"chip": 0.9}}), THRESHOLDS, crop, GEOM, CFG, 0)
    inside = find_defects(grid({(40, 12): {"chip": 0.9}}), THRESHOLDS, crop, GEOM, CFG, 0)
    assert [d.kind for d in edge] == ["chip"]
    assert inside == []


def test_width_is_measured_at_half_the_peak_so_a_glow_does_not_make_a_scratch_deep() -> None:
    # A bright 2 px core inside a faint 9 px glow (blur, JPEG ringing): 0.2 mm wide, not 0.9 mm.
    crop = np.full((1536, 768, 3), 20, np.uint8)
    x = 20 * 16 + 8
    cv2.line(crop, (x, 30 * 16), (x, 60 * 16), (50, 50, 50), 9)
    cv2.line(crop, (x, 30 * 16), (x, 60 * 16), (230, 230, 230), 2)
    cells = {(r, 20): {"scratch": 0.95} for r in range(30, 60)}
    defects = find_defects(grid(cells), THRESHOLDS, crop, GEOM, CFG, 0)
    assert [(d.kind, d.severity) for d in defects] == [("scratch", "light")]
    assert defects[0].width_mm < 0.35
    # The same line at full strength across its width is deep.
    wide = np.full((1536, 768, 3), 20, np.uint8)
    cv2.line(wide, (x, 30 * 16), (x, 60 * 16), (230, 230, 230), 3)  # about 5 px: 0.5 mm
    assert [d.severity for d in find_defects(grid(cells), THRESHOLDS, wide, GEOM, CFG, 0)] == ["deep"]
