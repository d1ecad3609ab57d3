"""Turn the model's per-cell class probabilities into measured defects in the canonical view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.config.model import GradingConfig
from edge.contract import Defect

KINDS = ("scratch", "crack", "chip", "dirt")


@dataclass(frozen=True)
class Geometry:
    """How the canonical crop maps to millimetres and to the device inside its margin."""

    mm_x: float  # mm per canonical pixel, across
    mm_y: float  # mm per canonical pixel, along the device
    margin: float  # the crop's margin as a fraction of the device, each side
    stride: int


def classify_cells(probs: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Label per cell: the most likely defect class over its threshold, else 0 (none)."""
    defect = probs[..., 1:]
    passing = defect >= np.asarray(thresholds, np.float32)
    best = np.argmax(np.where(passing, defect, -1.0), axis=-1) + 1
    return np.where(passing.any(axis=-1), best, 0).astype(np.uint8)


def place_name(u: float, v: float) -> str:
    """A human place from fractions across (u) and down (v) the device."""
    row = "upper" if v < 1 / 3 else "lower" if v > 2 / 3 else "middle"
    col = "left" if u < 1 / 3 else "right" if u > 2 / 3 else "centre"
    if row == "middle":
        return "centre" if col == "centre" else f"middle {col}"
    return f"{row} {col}"


def device_fraction(x: float, y: float, size: tuple[int, int], margin: float) -> tuple[float, float]:
    """Canonical pixel -> fractions of the device (the crop adds ``margin`` on every side)."""
    w, h = size
    m = margin / (1 + 2 * margin)
    u = (x / w - m) / (1 - 2 * m)
    v = (y / h - m) / (1 - 2 * m)
    return float(np.clip(u, 0, 1)), float(np.clip(v, 0, 1))


@dataclass(frozen=True)
class _Size:
    length: float
    width: float
    area: float
    pixels: int  # pixels that stand out from their surroundings


def _measure(gray: np.ndarray, cells: np.ndarray, geom: Geometry) -> _Size:
    """Size in mm of the pixels that stand out from their surroundings in a blob.

    The model locates to a 16 px cell; the size comes from the pixels themselves so that a 2 mm
    scratch is not reported as a cell's 1.6 mm or a neighbour's 3.2 mm.
    """
    s = geom.stride
    ys, xs = np.nonzero(cells)
    gy0, gy1 = max(0, ys.min() - 1), min(cells.shape[0], ys.max() + 2)
    gx0, gx1 = max(0, xs.min() - 1), min(cells.shape[1], xs.max() + 2)
    region = gray[gy0 * s : gy1 * s, gx0 * s : gx1 * s]
    contrast = cv2.absdiff(region, cv2.medianBlur(region, 11)).astype(np.float32)
    mad = float(np.median(np.abs(contrast - np.median(contrast)))) + 1e-3
    thr = max(8.0, float(np.median(contrast)) + 5 * 1.4826 * mad)
    inside = np.kron(cells[gy0:gy1, gx0:gx1].astype(np.uint8), np.ones((s, s), np.uint8))
    inside = cv2.dilate(inside, np.ones((s // 2 + 1, s // 2 + 1), np.uint8))[: region.shape[0], : region.shape[1]]
    py, px = np.nonzero((contrast > thr) & (inside > 0))
    if len(px) < 4:
        extent = max((np.ptp(ys) + 1) * s * geom.mm_y, (np.ptp(xs) + 1) * s * geom.mm_x)
        return _Size(float(extent), s * min(geom.mm_x, geom.mm_y), len(ys) * s * s * geom.mm_x * geom.mm_y, len(px))
    pts = np.stack([px * geom.mm_x, py * geom.mm_y], axis=1).astype(np.float32)
    (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
    length = max(rw, rh, geom.mm_x)
    area = len(px) * geom.mm_x * geom.mm_y
    width = min(length, max(geom.mm_x, area / length))
    return _Size(float(length), float(width), float(area), len(px))


def find_defects(
    probs: np.ndarray,
    thresholds: Sequence[float],
    crop: np.ndarray,
    geom: Geometry,
    cfg: GradingConfig,
    image_index: int,
) -> list[Defect]:
    labels = classify_cells(probs, thresholds)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h, w = crop.shape[:2]
    cell_mm = geom.stride * (geom.mm_x + geom.mm_y) / 2
    # Fragments of one broken scratch or crack closer than merge_distance are one defect.
    reach = max(1, round(cfg.merge_distance_mm / cell_mm))
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    out: list[Defect] = []
    for k, kind in enumerate(KINDS, start=1):
        mask = (labels == k).astype(np.uint8)
        if not mask.any():
            continue
        n, groups = cv2.connectedComponents(cv2.dilate(mask, kernel), connectivity=8)
        for g in range(1, n):
            cells = (groups == g) & (mask > 0)
            if not cells.any():
                continue
            size = _measure(gray, cells, geom)
            # Damage is visible in the pixels; a blob with nothing standing out is the model
            # reacting to shading (lamp sheen, vignetting), not a scratch or crack.
            if kind != "dirt" and size.pixels < cfg.min_defect_pixels:
                continue
            if kind == "dirt" and size.area < cfg.min_dirt_area_mm2:
                continue
            if kind == "scratch" and size.length < cfg.min_scratch_mm:
                continue  # a speck, not a scratch
            ys, xs = np.nonzero(cells)
            s = geom.stride
            box = (xs.min() * s / w, ys.min() * s / h, (xs.max() + 1) * s / w, (ys.max() + 1) * s / h)
            u, v = device_fraction(float(xs.mean() + 0.5) * s, float(ys.mean() + 0.5) * s, (w, h), geom.margin)
            severity = "n/a"
            if kind == "scratch":
                severity = "deep" if size.width >= cfg.deep_scratch_width_mm else "light"
            elif kind == "crack":
                severity = "deep"
            out.append(
                Defect(
                    kind=kind,  # type: ignore[arg-type]
                    severity=severity,  # type: ignore[arg-type]
                    length_mm=round(size.length, 1),
                    width_mm=round(size.width, 2),
                    area_mm2=round(size.area, 1),
                    place=place_name(u, v),
                    confidence=round(float(probs[..., k][cells].max()), 3),
                    box=tuple(round(float(b), 4) for b in box),  # type: ignore[arg-type]
                    image_index=image_index,
                )
            )
    return out
