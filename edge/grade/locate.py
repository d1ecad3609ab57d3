"""Find the phone on the booth background and warp it to a canonical upright (portrait) view."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Work size for the search: the outline needs no more than about this many pixels on the long side.
_SEARCH_LONG_SIDE = 640
# How much less a blob's convex hull counts than the blob itself when judging rectangularity.
_HULL_DISCOUNT = 0.1
# A blob this rectangular is the device (a phone's rounded corners leave about 0.99): the cues
# after the map that found it are not computed.
_SETTLED_SOLIDITY = 0.97
# A blob this much of the frame, running off it, may be a phone held close to the camera; one
# over more of it is a close-up of glass, or the photo less a caption strip.
_HELD_AREA = (0.3, 0.9)
# Running off the frame lengthwise, the part in view is stubbier than the phone (a 2:1 phone over
# 90% of a 4:3 frame shows 1.48); two phones side by side make a stubbier blob still.
_HELD_MIN_ASPECT = 1.4


@dataclass(frozen=True)
class Location:
    quad: np.ndarray  # float32 4x2 in image pixels: top-left, top-right, bottom-right, bottom-left
    area_fraction: float
    aspect: float


def order_quad(box: np.ndarray) -> np.ndarray:
    """Order four corners so the first side is a short one and the device reads as portrait.

    The 180° ambiguity is settled by putting the end nearer the image's left (landscape) or top
    (portrait) first, so shots from a fixed camera always get the same orientation.
    """
    pts = np.asarray(box, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    ang = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(ang)]  # clockwise in image coordinates (y down)
    if np.linalg.norm(pts[1] - pts[0]) > np.linalg.norm(pts[2] - pts[1]):
        pts = np.roll(pts, -1, axis=0)
    # Now pts[0]->pts[1] is a short side; choose which short side is the top.
    top_mid, bottom_mid = (pts[0] + pts[1]) / 2, (pts[2] + pts[3]) / 2
    axis = bottom_mid - top_mid
    first_is_top = axis[0] > 0 if abs(axis[0]) > abs(axis[1]) else axis[1] > 0
    if not first_is_top:
        pts = np.roll(pts, 2, axis=0)
    return pts


def quad_sides(quad: np.ndarray) -> tuple[float, float]:
    """(long, short) side of an ordered quad in pixels, each the mean of its two opposite sides."""
    q = quad
    long_px = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    short_px = (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2
    return float(long_px), float(short_px)


def expand_quad(quad: np.ndarray, margin: float) -> np.ndarray:
    """Grow a quad about its centre so the frame edges stay inside the crop."""
    c = quad.mean(axis=0)
    return ((quad - c) * (1 + 2 * margin) + c).astype(np.float32)


def canonical_transform(quad: np.ndarray, size: tuple[int, int], margin: float) -> np.ndarray:
    """3x3 matrix from image pixels to a (width, height) canonical crop.

    Affine through three corners: the locator's quad is a rotated rectangle, so this is exact, and
    an affine warp costs about half of a perspective one.
    """
    w, h = size
    q = expand_quad(quad, margin)
    m = cv2.getAffineTransform(np.float32([q[0], q[1], q[3]]), np.float32([[0, 0], [w, 0], [0, h]]))
    return np.vstack([m, [0.0, 0.0, 1.0]])


def warp_canonical(image: np.ndarray, quad: np.ndarray, size: tuple[int, int], margin: float) -> np.ndarray:
    m = canonical_transform(quad, size, margin)
    return cv2.warpAffine(image, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _border(small: np.ndarray) -> np.ndarray:
    """Pixels of a strip around the frame edge, where the booth background shows."""
    h, w = small.shape[:2]
    b = max(2, min(h, w) // 40)
    c = small.shape[2] if small.ndim == 3 else 1
    return np.concatenate([part.reshape(-1, c) for part in (small[:b], small[-b:], small[:, :b], small[:, -b:])])


def _colour_distance(blur: np.ndarray, ref: np.ndarray | tuple[float, ...]) -> np.ndarray:
    # OpenCV's per-element ops: several times faster than numpy's norm.
    diff = cv2.subtract(blur, ref if isinstance(ref, np.ndarray) else (*ref, 0.0))
    return cv2.sqrt(cv2.transform(cv2.multiply(diff, diff), np.ones((1, 3), np.float32)))


def _cue_maps(small: np.ndarray, empty: np.ndarray | None) -> Iterator[tuple[np.ndarray, list[float]]]:
    """Maps in which the device stands out, each with the thresholds worth trying on it, the most
    telling first; each is computed only when the ones before it found no clear device.

    Empty booth: distance from the calibrated background, where the camera has one.
    Colour: distance from the border's median after a blur that averages the felt's texture away.
    Smoothness: glass and paint are smooth where felt is textured; this separates a black phone
    from dark felt of nearly the same grey.
    """
    blur = cv2.GaussianBlur(small, (0, 0), 3.0).astype(np.float32)
    if empty is not None:
        background = cv2.resize(empty, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
        change = _colour_distance(blur, cv2.GaussianBlur(background, (0, 0), 3.0).astype(np.float32))
        yield change, [8.0, 14.0, 25.0, 45.0]
    strip = _border(blur)
    ref = np.median(strip, axis=0)
    colour = _colour_distance(blur, tuple(float(c) for c in ref))
    spread = float(np.percentile(np.linalg.norm(strip - ref, axis=1), 95))
    yield colour, sorted({max(8.0, spread * m) for m in (1.2, 1.6, 2.2, 3.0, 4.5)} | {30.0, 60.0})
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mean = cv2.blur(gray, (9, 9))
    texture = cv2.sqrt(cv2.max(cv2.blur(cv2.multiply(gray, gray), (9, 9)) - cv2.multiply(mean, mean), 0.0))
    texture = cv2.GaussianBlur(texture, (0, 0), 2.0)
    felt = float(np.median(_border(texture)))
    if felt > 2.0:  # a smooth backdrop gives no texture cue
        yield felt - texture, [felt * m for m in (0.35, 0.5, 0.65)]
    # Darkness: a phone held up to the camera shows dark glass against hands and a busy room, where
    # the frame's border has no one colour to measure against.
    dark = 255.0 - cv2.cvtColor(blur, cv2.COLOR_BGR2GRAY)
    yield dark, [255.0 - v for v in (50.0, 75.0, 100.0, 125.0)]


def _levels(cue: np.ndarray, thresholds: list[float]) -> tuple[np.ndarray, dict[float, int]]:
    """How many of the thresholds each pixel of a cue map exceeds, and each threshold's rank: the
    map exceeds a threshold where its level exceeds the rank."""
    ordered = sorted(set(thresholds))
    levels = np.zeros(cue.shape, np.uint8)
    for thr in ordered:
        levels += cue > thr
    return levels, {thr: i for i, thr in enumerate(ordered)}


def _sides_run_off(contour: np.ndarray, shape: tuple[int, ...]) -> tuple[bool, bool, bool, bool]:
    """Which sides of the frame (left, top, right, bottom) a blob runs off."""
    x, y, w, h = cv2.boundingRect(contour)
    return x <= 1, y <= 1, x + w >= shape[1] - 1, y + h >= shape[0] - 1


def _framed(sides: tuple[bool, bool, bool, bool]) -> bool:
    """Whether a blob can be the device placed in the booth: it may run off one side of the frame,
    or off two opposite sides when the phone fills the frame lengthwise; lit felt spreads into a
    corner."""
    left, top, right, bottom = sides
    if left + top + right + bottom <= 1:
        return True
    return (top and bottom and not (left or right)) or (left and right and not (top or bottom))


def _held(
    box: np.ndarray, sides: tuple[bool, bool, bool, bool], area: float, aspect: float, shape: tuple[int, ...]
) -> bool:
    """Whether a big blob can be a phone held close to the camera: lengthwise along the frame's long
    side (side by side, two phones span the short one) and running off both its ends, perhaps off
    one more side; never off a corner alone (lit felt spreads into one)."""
    if not (_HELD_AREA[0] <= area <= _HELD_AREA[1] and aspect >= _HELD_MIN_ASPECT):
        return False
    left, top, right, bottom = sides
    d = max(box[1] - box[0], box[2] - box[1], key=lambda v: float(np.hypot(*v)))
    upright = abs(d[1]) > abs(d[0])
    if upright != (shape[0] > shape[1]) and shape[0] != shape[1]:
        return False
    return bool(top and bottom if upright else left and right)


def _rectangles(fg: np.ndarray) -> list[tuple[np.ndarray, float, tuple[bool, bool, bool, bool]]]:
    """Rotated rectangles of the largest blobs, with how fully each blob fills its rectangle and
    which sides of the frame it runs off.

    Damage or glare at a device's edge can bite into its outline; its convex hull still fills the
    rectangle, so the hull counts too, at a discount that keeps background joined on worse. A blob
    running off all four sides is background.
    """
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
        rect = cv2.minAreaRect(c)
        rw, rh = rect[1]
        sides = _sides_run_off(c, fg.shape)
        if min(rw, rh) >= 4 and not all(sides):
            solid = max(cv2.contourArea(c), cv2.contourArea(cv2.convexHull(c)) - _HULL_DISCOUNT * rw * rh)
            out.append((cv2.boxPoints(rect), solid / (rw * rh), sides))
    return out


_Candidate = tuple[float, np.ndarray, float, float, float]  # score, box, area, aspect, solidity


def _score(candidate: _Candidate) -> float:
    return candidate[0]


def locate(
    image: np.ndarray, min_area: float, aspect_range: tuple[float, float], empty: np.ndarray | None = None
) -> Location | None:
    """The device's quad, or None when nothing phone-shaped stands out from the background.

    ``empty`` is the camera's photo of the empty booth (``edge.grade.reference``), when calibrated.

    Several cues and thresholds are tried and the most rectangle-like blob wins: a black phone on
    dark felt separates by smoothness, a white phone with a black screen at a high colour threshold.
    A phone held close to the camera, running off the frame, wins only where no blob looks like a
    phone placed in the booth.
    """
    # Halving keeps INTER_AREA on its vectorised 2x path, ten times faster than one area resize by
    # an odd factor; the last, smaller step brings the image to the size the cues are tuned for.
    w = image.shape[1]
    small = image
    while max(small.shape[:2]) >= 2 * _SEARCH_LONG_SIDE:
        small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if max(small.shape[:2]) > _SEARCH_LONG_SIDE:
        k = _SEARCH_LONG_SIDE / max(small.shape[:2])
        small = cv2.resize(small, (round(small.shape[1] * k), round(small.shape[0] * k)), interpolation=cv2.INTER_AREA)
    f = small.shape[1] / w
    k = max(3, round(min(small.shape[:2]) / 80)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    frame_area = small.shape[0] * small.shape[1]
    best: _Candidate | None = None
    # Kept apart: background joined to a phone in the booth can make a bigger blob off the frame.
    held: _Candidate | None = None
    for cue, thresholds in _cue_maps(small, empty):
        settled = best or held
        if settled is not None and settled[4] >= _SETTLED_SOLIDITY:
            break
        # Opening and closing commute with thresholding: cleaning the map's levels once cleans the
        # mask of every threshold, at the cost of one mask.
        levels, rank = _levels(cue, thresholds)
        levels = cv2.morphologyEx(levels, cv2.MORPH_OPEN, kernel)
        levels = cv2.morphologyEx(levels, cv2.MORPH_CLOSE, kernel, iterations=2)
        for thr in thresholds:
            fg = cv2.compare(levels, rank[thr], cv2.CMP_GT)
            for box, solidity, sides in _rectangles(fg):
                side = np.linalg.norm(box[1] - box[0]), np.linalg.norm(box[2] - box[1])
                area = side[0] * side[1] / frame_area
                aspect = max(side) / min(side)
                # A device fills its rectangle (rounded corners aside); glare and shadow do not.
                if area < min_area or area > 0.97 or solidity < 0.8 or aspect > aspect_range[1]:
                    continue
                # Background joined to the device at a low threshold makes a bigger but less
                # rectangular blob: squareness counts for much more than size.
                candidate = (area * solidity**10, box, area, aspect, solidity)
                if aspect >= aspect_range[0] and _framed(sides):
                    best = max(best, candidate, key=_score) if best else candidate
                elif _held(box, sides, area, aspect, fg.shape):
                    held = max(held, candidate, key=_score) if held else candidate
    best = best or held
    if best is None:
        return None
    log.debug("device at area %.3f, aspect %.2f", best[2], best[3])
    return Location(order_quad(best[1] / f).astype(np.float32), float(best[2]), float(best[3]))
