"""How much a crack found by the model is backed by the pixels: the evidence a D or E stands on.

An int8 model saturates: on real photos a sharp wallpaper edge and a broken screen both reach its
top crack probability, so the highest probability on a line says little. What differs is how much
of the line the model is sure of *where the glass shows a thin line*: a broken screen has many
cells that are both near-certain and crossed by thin high-contrast lines (the cracks), while
wallpaper, photos and icons give a few such cells, or certain cells over soft gradients and
textures with no thin line in them.

The evidence mass is the sum, over the crack's cells that a thin line crosses and that the model
calls crack rather than scratch, of how far the line's probability rises above the crack threshold
towards certainty (1 for a saturated cell). The evidence is that mass times the share of the
blob's cells it makes up; it is reported as a confidence in [0, 1) that grows with it:
``evidence / (evidence + EVIDENCE_SCALE)``.
"""

from __future__ import annotations

import cv2
import numpy as np

# Thin lines are what a 7 px (about 0.7 mm in the canonical crop) opening or closing removes:
# cracks are one to three pixels wide there, screen content edges are steps, not lines.
_LINE_KERNEL = 7
# The grey-level rise of a line over its surroundings for it to count: glass cracks catch light.
_LINE_CONTRAST = 30
# A cell counts as crossed by a line when this many of its pixels are line pixels (three quarters
# of a 16 px cell crossed by a one-pixel line).
_LINE_PIXELS_PER_CELL = 12
# The evidence at which the confidence reaches one half, in saturated line cells.
EVIDENCE_SCALE = 20.0


def line_pixels_per_cell(gray: np.ndarray, stride: int) -> np.ndarray:
    """How many pixels of each ``stride`` cell belong to a thin bright or dark line."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_LINE_KERNEL, _LINE_KERNEL))
    bright = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel)
    lines = cv2.max(bright, cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel))
    mask = (lines >= _LINE_CONTRAST).astype(np.float32)
    gh, gw = gray.shape[0] // stride, gray.shape[1] // stride
    # An area resize by a whole factor is each cell's mean, a few times faster than numpy's sum.
    mean = cv2.resize(mask[: gh * stride, : gw * stride], (gw, gh), interpolation=cv2.INTER_AREA)
    return np.rint(mean * stride * stride)


def crack_mass(
    p_scratch: np.ndarray, p_crack: np.ndarray, cells: np.ndarray, line_pixels: np.ndarray, threshold: float
) -> float:
    """Saturated-line-cell equivalents of a crack blob: certainty of a line above ``threshold``, in
    the cells where a thin line crosses and the model calls it a crack rather than a scratch.

    The line's certainty is scratch + crack, as ``classify_cells`` pools them.
    """
    gh, gw = line_pixels.shape
    crossed = np.zeros(cells.shape, bool)
    crossed[:gh, :gw] = line_pixels >= _LINE_PIXELS_PER_CELL
    rise = np.clip((p_scratch + p_crack - threshold) / max(1e-6, 1.0 - threshold), 0.0, 1.0)
    return float(rise[cells & crossed & (p_crack >= p_scratch)].sum())


def confidence(mass: float, cells: int) -> float:
    """The crack Defect's ``confidence`` in [0, 1): its evidence mass, times the share of its cells
    that carry it.

    A broken screen's crack blob is made mostly of certain cells crossed by thin lines; the model
    firing over a textured photo or a busy wallpaper makes a broad blob of which few cells show a
    line, however many of them it is sure of.
    """
    evidence = mass * mass / max(1, cells)
    return evidence / (evidence + EVIDENCE_SCALE)
