"""Annotated overlay JPEG: the device outline and every defect outlined and labelled."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.contract import Defect

# BGR per kind: damage in warm colours, dirt in cyan so it reads as "not damage".
_COLOURS = {"crack": (0, 0, 255), "scratch": (0, 165, 255), "chip": (255, 0, 255), "dirt": (255, 255, 0)}


def _label(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = int(np.clip(org[0], 0, max(0, img.shape[1] - tw)))
    y = int(np.clip(org[1], th + base, img.shape[0] - 1))
    cv2.rectangle(img, (x, y - th - base), (x + tw, y + base // 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def overlay_base(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """A copy of the photo at the overlay's size to draw on, and its scale from the photo.

    Made as soon as the photo is located, so a grader holds this, not the larger photo, while the
    model runs; drawing on a copy leaves the photo (perhaps the camera's frame) as it was.
    """
    f = min(1.0, long_side / max(image.shape[:2]))
    return (cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR) if f < 1 else image.copy()), f


def render_overlay(
    img: np.ndarray,
    f: float,
    quad: np.ndarray | None,
    to_canonical: np.ndarray | None,
    canonical_size: tuple[int, int],
    defects: Sequence[Defect],
    note: str | None,
    quality: int,
) -> bytes:
    """Draw on ``img`` (from ``overlay_base``, ``f`` its scale) and encode it as JPEG."""
    scale = max(0.5, img.shape[1] / 1600)
    thick = max(1, round(scale * 2))
    if quad is not None:
        cv2.polylines(img, [np.round(quad * f).astype(np.int32)], True, (0, 200, 0), thick, cv2.LINE_AA)
    if to_canonical is not None:
        back = np.linalg.inv(to_canonical)
        w, h = canonical_size
        for d in defects:
            x0, y0, x1, y1 = d.box
            corners = np.float32([[x0 * w, y0 * h], [x1 * w, y0 * h], [x1 * w, y1 * h], [x0 * w, y1 * h]])
            poly = cv2.perspectiveTransform(corners[None], back)[0] * f
            colour = _COLOURS[d.kind]
            cv2.polylines(img, [np.round(poly).astype(np.int32)], True, colour, thick, cv2.LINE_AA)
            text = d.kind if d.kind == "dirt" else f"{d.kind} {d.length_mm:.1f} mm"
            top = poly[np.argmin(poly[:, 1])]
            _label(img, text, (int(top[0]), int(top[1]) - 4), colour, scale * 0.6)
    if note:
        _label(img, note, (10, img.shape[0] - 10), (255, 255, 255), scale * 0.7)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("overlay JPEG encoding failed")
    return buf.tobytes()
