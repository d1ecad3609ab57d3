"""Crack evidence: the model's certainty counts only where the pixels show a thin line."""

from __future__ import annotations

import cv2
import numpy as np

from edge.config.model import GradingConfig
from edge.grade.detect import find_defects
from edge.grade.evidence import confidence, crack_mass, line_pixels_per_cell
from tests.test_grading_detect import GEOM, THRESHOLDS, grid

CFG = GradingConfig()
# Rows 2..40 of column 20: a line from the device's top outline, as glass breaks from an edge.
ROWS, COL = range(2, 40), 20
CRACK_CELLS = {(r, COL): {"scratch": 0.02, "crack": 0.97} for r in ROWS}


def _dark_crop() -> np.ndarray:
    return np.full((1536, 768, 3), 20, np.uint8)


def _thin_line(crop: np.ndarray) -> np.ndarray:
    x = COL * 16 + 8
    cv2.line(crop, (x, ROWS.start * 16), (x, ROWS.stop * 16), (200, 200, 200), 2)
    return crop


def _wallpaper_edge(crop: np.ndarray) -> np.ndarray:
    """Two flat colours meeting along the same column: a hard edge but no line."""
    crop[:, COL * 16 + 8 :] = (160, 90, 200)
    return crop


def _lit_screen() -> np.ndarray:
    return np.full((1536, 768, 3), (200, 150, 120), np.uint8)


def _soft_stripe(crop: np.ndarray) -> np.ndarray:
    """A faint stripe along the same cells: it stands out, but is no thin line of a crack's contrast."""
    x = COL * 16 + 8
    level = tuple(int(v) + 20 for v in crop[0, 0])
    cv2.line(crop, (x, ROWS.start * 16), (x, ROWS.stop * 16), level, 2)
    return crop


def test_a_thin_line_is_found_per_cell_and_a_colour_step_is_not() -> None:
    lines = line_pixels_per_cell(cv2.cvtColor(_thin_line(_dark_crop()), cv2.COLOR_BGR2GRAY), 16)
    assert lines.shape == (96, 48)
    assert (lines[ROWS.start + 1 : ROWS.stop - 1, COL] >= 16).all()
    assert lines[60:, :].sum() == 0
    step = line_pixels_per_cell(cv2.cvtColor(_wallpaper_edge(_dark_crop()), cv2.COLOR_BGR2GRAY), 16)
    assert step.sum() == 0


def test_evidence_grows_with_the_certain_cells_a_line_crosses() -> None:
    probs = grid(CRACK_CELLS)
    lines = line_pixels_per_cell(cv2.cvtColor(_thin_line(_dark_crop()), cv2.COLOR_BGR2GRAY), 16)
    cells = probs[..., 2] > 0.5
    full = crack_mass(probs[..., 1], probs[..., 2], cells, lines, 0.9)
    half = cells.copy()
    half[ROWS.start + len(ROWS) // 2 :] = False
    assert full > 30
    assert crack_mass(probs[..., 1], probs[..., 2], half, lines, 0.9) < 0.6 * full
    # The same certainty where no line crosses is no evidence at all.
    assert crack_mass(probs[..., 1], probs[..., 2], cells, np.zeros_like(lines), 0.9) == 0
    # More certain line cells, or the same ones making up more of the blob, is more evidence.
    assert 0 < confidence(3, 30) < confidence(30, 300) < confidence(30, 40) < confidence(3000, 3000) < 1


def test_a_certain_crack_on_a_thin_line_is_a_crack_with_that_evidence() -> None:
    defects = find_defects(grid(CRACK_CELLS), THRESHOLDS, _thin_line(_dark_crop()), GEOM, CFG, 0)
    assert [d.kind for d in defects] == ["crack"]
    assert 0.3 < defects[0].confidence < 1


def test_a_certain_crack_along_a_faint_wallpaper_stripe_is_no_crack() -> None:
    # The model is just as sure, and the stripe is a stroke in the pixels, but no thin line of a
    # crack's contrast crosses its cells, and the screen is lit: it is screen content.
    probs, crop = grid(CRACK_CELLS), _soft_stripe(_lit_screen())
    without_rule = GradingConfig(min_crack_evidence=0)
    assert [d.kind for d in find_defects(probs, THRESHOLDS, crop, GEOM, without_rule, 0)] == ["crack"]
    assert [d for d in find_defects(probs, THRESHOLDS, crop, GEOM, CFG, 0) if d.kind == "crack"] == []


def test_a_weak_crack_on_dark_glass_is_kept_for_a_person() -> None:
    # A screen that is off shows no content to mistake: the same weak line stays a crack, with a
    # confidence far below any crack_confirm, so the session goes to review.
    defects = find_defects(grid(CRACK_CELLS), THRESHOLDS, _soft_stripe(_dark_crop()), GEOM, CFG, 0)
    assert [d.kind for d in defects] == ["crack"]
    assert defects[0].confidence < 0.05
