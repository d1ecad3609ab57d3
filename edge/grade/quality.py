"""The quality gate: a photo that fails it asks for a retake, never for a guess."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.config.model import GradingConfig

# Sharpness is measured at one fixed size so the threshold does not depend on the camera.
_SHARPNESS_SIZE = (384, 768)
# Grey levels a sensor gives only when clipped: the fractions in GradingConfig count these pixels.
_CLIPPED_BLACK = 5
_CLIPPED_WHITE = 250


@dataclass(frozen=True)
class Quality:
    sharpness: float
    highlight_fraction: float
    reason: str | None


def check_frame(image: np.ndarray, cfg: GradingConfig) -> str | None:
    """Exposure of the whole frame, before looking for the device."""
    gray = cv2.cvtColor(image[::4, ::4], cv2.COLOR_BGR2GRAY)
    if float(gray.mean()) < cfg.min_frame_brightness:
        return "photo too dark: check the booth lights"
    if float((gray <= _CLIPPED_BLACK).mean()) > cfg.max_shadow_fraction:
        return "photo underexposed: most of it is black"
    return None


def sharpness(crop: np.ndarray, native_long_px: float | None = None) -> float:
    """Variance of the Laplacian on the device's strongest edges, relative to their gradient energy.

    Measured at one fixed size after a light blur, so neither sensor noise (which inflates a plain
    Laplacian variance) nor edge contrast (a black phone on dark felt) moves it: only edge width.
    A device the photo shows smaller than that size (``native_long_px``, its long side in the
    photo) is measured at its own size: upscaling widens every edge, and that blur is ours, not
    the camera's.
    """
    w, h = _SHARPNESS_SIZE
    k = min(1.0, native_long_px / h) if native_long_px else 1.0
    size = (max(32, round(w * k)), max(64, round(h * k)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.0)
    lap = cv2.Laplacian(gray, cv2.CV_32F)
    mag = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    edges = mag >= _percentile(mag, 97)
    energy = float(np.mean(mag[edges] ** 2))
    return 1000.0 * float(lap[edges].var()) / energy if energy > 1.0 else 0.0


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear between ranks) by partial sort, several times faster."""
    flat = values.ravel()
    k = q / 100 * (flat.size - 1)
    lo, hi = int(np.floor(k)), int(np.ceil(k))
    part = np.partition(flat, (lo, hi))
    return float(part[lo] + (k - lo) * (part[hi] - part[lo]))


def check_device(crop: np.ndarray, cfg: GradingConfig, native_long_px: float | None = None) -> Quality:
    sharp = sharpness(crop, native_long_px)
    h, w = crop.shape[:2]
    inner = crop[h // 20 : h - h // 20, w // 20 : w - w // 20]
    # Clipped white in every channel; OpenCV's range test is a tenth of numpy's min over channels.
    white = cv2.inRange(inner, (_CLIPPED_WHITE,) * 3, (255, 255, 255))
    clipped = cv2.countNonZero(white) / (inner.shape[0] * inner.shape[1])
    reason = None
    if sharp < cfg.min_sharpness:
        reason = f"photo blurred (sharpness {sharp:.1f} < {cfg.min_sharpness:g}): hold the device still and refocus"
    elif clipped > cfg.max_highlight_fraction:
        reason = f"glare: {clipped:.0%} of the device is clipped white; lower the exposure or move the lamp"
    return Quality(sharp, clipped, reason)
