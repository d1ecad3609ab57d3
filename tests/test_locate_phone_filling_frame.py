"""A phone held close to the camera fills most of the frame and runs off its ends: still located."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.grade.locate import locate
from edge.synth.device import draw_device, random_spec

W, H = 1200, 1600  # a 3:4 portrait photo, as a phone camera at a repair counter takes it
SEARCH_PX = 640  # the locator's long side


def _backdrop(rng: np.random.Generator, kind: str) -> np.ndarray:
    """Paper (light, fine grain) or wood (brown, wavy grain), float BGR 0-1."""
    if kind == "paper":
        g = rng.uniform(0.8, 0.92) + 0.015 * rng.standard_normal((H, W)).astype(np.float32)
        return np.repeat(g[..., None], 3, axis=2)
    xx = np.mgrid[0:H, 0:W][1].astype(np.float32)
    wave = 25 * np.sin(np.mgrid[0:H, 0:W][0].astype(np.float32) / 180)
    grain = np.sin((xx + wave) / rng.uniform(8, 16)) * 0.5 + 0.5
    return np.float32([0.25, 0.42, 0.62]) * (0.8 + 0.25 * grain[..., None])


def _held_phone(seed: int, kind: str, off_left: bool) -> tuple[np.ndarray, np.ndarray]:
    """A black-glass phone over 80-90% of the frame, running off its top and bottom (and its left
    side), on a backdrop; the photo and the corners of the part in view."""
    rng = np.random.default_rng([seed, 91])
    spec = random_spec(rng, "black")
    dev = draw_device(rng, spec, "front", W * (0.82 + 0.03 * seed) / spec.width_mm)
    dh, dw = dev.alpha.shape
    x0 = -0.05 * dw if off_left else (W - dw) / 2
    y0 = (H - dh) / 2
    m = np.float32([[1, 0, x0], [0, 1, y0]])
    warp = {"dsize": (W, H), "flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT}
    alpha = cv2.warpAffine(dev.alpha, m, **warp)[..., None]
    img = _backdrop(rng, kind) * (1 - alpha) + cv2.warpAffine(dev.image * dev.alpha[..., None], m, **warp)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    ok, buf = cv2.imencode(".jpg", np.clip(img * 255, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    left, right = max(0.0, x0), min(float(W), x0 + dw)
    return cv2.imdecode(buf, cv2.IMREAD_COLOR), np.float32([[left, 0], [right, 0], [right, H], [left, H]])


@pytest.mark.parametrize("kind", ["paper", "wood"])
@pytest.mark.parametrize("off_left", [False, True])
def test_phone_filling_the_frame_off_its_ends_is_located(kind: str, off_left: bool) -> None:
    for seed in range(3):
        image, truth = _held_phone(seed, kind, off_left)
        loc = locate(image, 0.03, (1.6, 2.6))
        assert loc is not None, (kind, off_left, seed)
        assert 0.75 < loc.area_fraction < 0.92
        # Within a few pixels at the locator's search size, where a low threshold widens the blob.
        err = min(float(np.abs(loc.quad - np.roll(truth, k, axis=0)).max()) for k in (0, 2))
        assert err < 5 * H / SEARCH_PX, (kind, off_left, seed, err)
