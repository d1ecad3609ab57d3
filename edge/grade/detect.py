"""Turn the model's per-cell class probabilities into measured defects in the canonical view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.config.model import GradingConfig
from edge.contract import DEFECT_KINDS, Defect
from edge.grade.evidence import confidence as crack_confidence
from edge.grade.evidence import crack_mass, line_pixels_per_cell

# A kind's label in the cell grid, which is also its column in the model's output (0 is none).
SCRATCH, CRACK, CHIP, DIRT = (DEFECT_KINDS.index(k) + 1 for k in ("scratch", "crack", "chip", "dirt"))


@dataclass(frozen=True)
class Geometry:
    """How the canonical crop maps to millimetres and to the device inside its margin."""

    mm_x: float  # mm per canonical pixel, across
    mm_y: float  # mm per canonical pixel, along the device
    margin: float  # the crop's margin as a fraction of the device, each side
    stride: int


def classify_cells(probs: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Label per cell: the most likely defect class over its threshold, else 0 (none).

    Scratches and cracks are both lines in the glass and the model often splits one line's
    evidence between them, so each is tested on their summed probability; which kind a whole line
    is, ``find_blobs`` decides.
    """
    evidence = probs.copy()
    evidence[..., SCRATCH] = evidence[..., CRACK] = probs[..., SCRATCH] + probs[..., CRACK]
    passing = evidence[..., 1:] >= np.asarray(thresholds, np.float32)
    best = np.argmax(np.where(passing, probs[..., 1:], -1.0), axis=-1) + 1
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
    line: bool  # some of them form a thin stroke, as a scratch or crack does; a speck or smear does not
    smooth: bool  # the strokes make one smooth unbranched curve


# A stroke is at least this many times longer than it is thick, and at least this long in mm.
_STROKE_ELONGATION = 4.0
_STROKE_MIN_MM = 1.0
_STROKE_MAX_PIECES = 24
# How far a scratch's pixels may stray from a smooth curve through them, in mm.
_SMOOTH_TOLERANCE_MM = 0.25


def _strokes(mask: np.ndarray, geom: Geometry) -> np.ndarray:
    """The standing-out pixels that belong to thin pieces: lines, arcs or webs of lines, not specks or smears.

    Thickness is twice the mean distance to the piece's border, so a spider web of thin lines is
    thin although its outline is round. 1-px gaps are closed first.
    """
    closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    depth = cv2.distanceTransform(closed, cv2.DIST_L2, 3)
    n, cc, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    px_mm = min(geom.mm_x, geom.mm_y)
    keep = np.zeros(n, bool)
    for i in np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:_STROKE_MAX_PIECES] + 1:
        if stats[i, cv2.CC_STAT_AREA] < 4:
            break
        piece = cc == i
        ys, xs = np.nonzero(piece)
        pts = np.stack([xs * geom.mm_x, ys * geom.mm_y], axis=1).astype(np.float32)
        (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
        extent = max(rw, rh) + px_mm
        thickness = 2 * float(depth[piece].mean()) * px_mm
        keep[i] = extent >= _STROKE_MIN_MM and extent >= _STROKE_ELONGATION * thickness
    return keep[cc] & (mask > 0)


def smooth_curve(pts: np.ndarray, tolerance_mm: float) -> bool:
    """Whether points (mm) lie along one smooth unbranched curve, as a scratch's do.

    Along the main axis, a scratch has one position across it that a cubic (an arc or a gentle
    hook) follows closely; branches, a web or sharp turns (glass breaking) leave several positions
    or a poor fit.
    """
    centred = pts - pts.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    t, n = centred @ axes[0], centred @ axes[1]
    if np.ptp(t) < 4 * tolerance_mm:
        return False  # too short to tell
    rms = float(np.sqrt(np.mean((n - np.polyval(np.polyfit(t, n, 3), t)) ** 2)))
    bins = np.floor((t - t.min()) / (2 * tolerance_mm)).astype(int)
    order = np.argsort(bins)
    edges = np.flatnonzero(np.diff(bins[order])) + 1
    spans = [np.ptp(g) for g in np.split(n[order], edges)]
    multi = float(np.mean([span > 3 * tolerance_mm for span in spans]))
    return rms <= tolerance_mm and multi <= 0.1


def _measure(gray: np.ndarray, cells: np.ndarray, geom: Geometry) -> _Size:
    """Size in mm of the pixels that stand out from their surroundings in a blob.

    The model locates to a 16 px cell; the size comes from the pixels themselves so that a 2 mm
    scratch is not reported as a cell's 1.6 mm or a neighbour's 3.2 mm. When some of them form
    strokes, only the strokes are measured, so dust specks beside a scratch do not lengthen it.
    """
    s = geom.stride
    ys, xs = np.nonzero(cells)
    gy0, gy1 = max(0, ys.min() - 1), min(cells.shape[0], ys.max() + 2)
    gx0, gx1 = max(0, xs.min() - 1), min(cells.shape[1], xs.max() + 2)
    region = gray[gy0 * s : gy1 * s, gx0 * s : gx1 * s]
    contrast = cv2.absdiff(region, cv2.medianBlur(region, 11)).astype(np.float32)
    mad = float(np.median(np.abs(contrast - np.median(contrast)))) + 1e-3
    thr = max(8.0, float(np.median(contrast)) + 5 * 1.4826 * mad)
    inside = _pixels(cells[gy0:gy1, gx0:gx1], s).astype(np.uint8)
    inside = cv2.dilate(inside, np.ones((s // 2 + 1, s // 2 + 1), np.uint8))[: region.shape[0], : region.shape[1]]
    mask = ((contrast > thr) & (inside > 0)).astype(np.uint8)
    py, px = np.nonzero(mask)
    if len(px) < 4:
        extent = max((np.ptp(ys) + 1) * s * geom.mm_y, (np.ptp(xs) + 1) * s * geom.mm_x)
        area = len(ys) * s * s * geom.mm_x * geom.mm_y
        return _Size(float(extent), s * min(geom.mm_x, geom.mm_y), area, len(px), False, False)
    strokes = _strokes(mask, geom)
    line = bool(strokes.any())
    if line:
        py, px = np.nonzero(strokes)
    pts = np.stack([px * geom.mm_x, py * geom.mm_y], axis=1).astype(np.float32)
    (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
    length = max(rw, rh, geom.mm_x)
    area = len(px) * geom.mm_x * geom.mm_y
    # Width at half the stroke's peak contrast: blur and JPEG ringing widen the faint skirt of a
    # bright line, not its core.
    level = contrast[py, px]
    core = int((level >= 0.5 * float(np.percentile(level, 90))).sum())
    width = min(length, max(geom.mm_x, core * geom.mm_x * geom.mm_y / length))
    smooth = line and smooth_curve(pts, _SMOOTH_TOLERANCE_MM)
    return _Size(float(length), float(width), float(area), int(mask.sum()), line, smooth)


def _pixels(cells: np.ndarray, stride: int) -> np.ndarray:
    """The crop's pixels under the cells, as a bool mask."""
    return np.kron(cells, np.ones((stride, stride), bool))


def _edge_distance_mm(cells: np.ndarray, geom: Geometry) -> float:
    """How far the cells nearest the device's outline are from it, in mm."""
    gh, gw = cells.shape
    ys, xs = np.nonzero(cells)
    scale = 1 + 2 * geom.margin
    u = np.clip(((xs + 0.5) / gw * scale - geom.margin), 0, 1)
    v = np.clip(((ys + 0.5) / gh * scale - geom.margin), 0, 1)
    width_mm, length_mm = gw * geom.stride * geom.mm_x / scale, gh * geom.stride * geom.mm_y / scale
    dist = np.minimum(np.minimum(u, 1 - u) * width_mm, np.minimum(v, 1 - v) * length_mm)
    return float(dist.min())


@dataclass(frozen=True)
class Blob:
    """One defect in cells of the model's grid, before it is put into words."""

    kind: str
    cells: np.ndarray  # bool grid
    size: _Size
    # The highest probability of the evidence that found it: scratch + crack for a scratch (or the
    # dirt a line turned out to be); for a crack, which decides a D or E, how much of it the model
    # is sure of where the pixels show a thin line (``edge.grade.evidence``), since its highest
    # probability saturates on screen content as on broken glass.
    confidence: float


def find_blobs(
    probs: np.ndarray, thresholds: Sequence[float], crop: np.ndarray, geom: Geometry, cfg: GradingConfig
) -> list[Blob]:
    """The defects in one canonical crop, after the checks that the pixels and the outline allow."""
    labels = classify_cells(probs, thresholds)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    cell_mm = geom.stride * (geom.mm_x + geom.mm_y) / 2
    # Fragments of one broken scratch or crack closer than merge_distance are one defect.
    reach = max(1, round(cfg.merge_distance_mm / cell_mm))
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    dirty = (labels == DIRT) | (probs[..., DIRT] >= cfg.dirt_zone_probability)
    dirt_zone = cv2.dilate(dirty.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    out: list[Blob] = []
    lines: np.ndarray | None = None
    # A scratch and a crack fragment of one line are one defect; which kind it is, the line's
    # summed probabilities decide.
    for members, fixed in (((SCRATCH, CRACK), None), ((CHIP,), "chip"), ((DIRT,), "dirt")):
        mask = np.isin(labels, members).astype(np.uint8)
        if not mask.any():
            continue
        n, groups = cv2.connectedComponents(cv2.dilate(mask, kernel), connectivity=8)
        for g in range(1, n):
            cells = (groups == g) & (mask > 0)
            if not cells.any():
                continue
            cracked = probs[..., CRACK][cells].sum() > probs[..., SCRATCH][cells].sum()
            kind = fixed or ("crack" if cracked else "scratch")
            evidence = probs[..., SCRATCH] + probs[..., CRACK] if fixed is None else probs[..., members[0]]
            confidence = float(evidence[cells].max())
            if kind == "chip" and _edge_distance_mm(cells, geom) > cfg.chip_max_edge_distance_mm:
                continue  # chips and dents are on the outline; inside it is a screen corner or a camera ring
            if kind in ("scratch", "crack") and dirt_zone[cells].mean() >= 0.5:
                kind = "dirt"  # the rim of a drop or the edge of a smear: cleaning comes first, then a retake
            size = _measure(gray, cells, geom)
            # Damage is visible in the pixels; a blob with nothing standing out is the model
            # reacting to shading (lamp sheen, vignetting), not a scratch or crack.
            if kind != "dirt" and size.pixels < cfg.min_defect_pixels:
                continue
            if kind in ("scratch", "crack") and not size.line:
                continue  # specks or a smear: a scratch or crack is a stroke in the pixels
            if kind == "dirt" and size.area < cfg.min_dirt_area_mm2:
                continue
            if kind == "scratch" and size.length < cfg.min_scratch_mm:
                continue  # a speck, not a scratch
            if kind == "crack" and size.smooth and _edge_distance_mm(cells, geom) > cfg.crack_edge_distance_mm:
                # One smooth unbranched curve that stops short of the outline is how a scratch
                # looks; glass breaks in straight runs with sharp turns, and usually from an edge.
                kind = "scratch"
            if kind == "crack":
                if lines is None:
                    lines = line_pixels_per_cell(gray, geom.stride)
                mass = crack_mass(probs[..., SCRATCH], probs[..., CRACK], cells, lines, thresholds[CRACK - 1])
                if (
                    mass < cfg.min_crack_evidence
                    and float(np.median(gray[_pixels(cells, geom.stride)])) >= cfg.lit_brightness
                ):
                    # Sure nowhere a thin line crosses, on a lit screen: wallpaper, icons, a photo. On
                    # dark glass there is no content to mistake, so a weak crack stays (a review).
                    continue
                confidence = crack_confidence(mass, int(cells.sum()))
            out.append(Blob(kind, cells, size, min(1.0, confidence)))
    return out


def blob_labels(blobs: Sequence[Blob], shape: tuple[int, int]) -> np.ndarray:
    """The grid labelled with the blobs' kinds (DEFECT_KINDS index + 1), for evaluation against the truth."""
    labels = np.zeros(shape, np.uint8)
    for b in blobs:
        labels[b.cells] = DEFECT_KINDS.index(b.kind) + 1
    return labels


def find_defects(
    probs: np.ndarray,
    thresholds: Sequence[float],
    crop: np.ndarray,
    geom: Geometry,
    cfg: GradingConfig,
    image_index: int,
) -> list[Defect]:
    h, w = crop.shape[:2]
    s = geom.stride
    out: list[Defect] = []
    for b in find_blobs(probs, thresholds, crop, geom, cfg):
        ys, xs = np.nonzero(b.cells)
        box = (xs.min() * s / w, ys.min() * s / h, (xs.max() + 1) * s / w, (ys.max() + 1) * s / h)
        u, v = device_fraction(float(xs.mean() + 0.5) * s, float(ys.mean() + 0.5) * s, (w, h), geom.margin)
        severity = "n/a"
        if b.kind == "scratch":
            severity = "deep" if b.size.width >= cfg.deep_scratch_width_mm else "light"
        elif b.kind == "crack":
            severity = "deep"
        out.append(
            Defect(
                kind=b.kind,  # type: ignore[arg-type]
                severity=severity,  # type: ignore[arg-type]
                length_mm=round(b.size.length, 1),
                width_mm=round(b.size.width, 2),
                area_mm2=round(b.size.area, 1),
                place=place_name(u, v),
                confidence=round(b.confidence, 3),
                box=tuple(round(float(v), 4) for v in box),  # type: ignore[arg-type]
                image_index=image_index,
            )
        )
    return out
