"""The quality gate on its own: exposure of the frame, sharpness and glare of the device crop."""

from __future__ import annotations

import cv2
import numpy as np

from edge.config.model import GradingConfig
from edge.grade.locate import warp_canonical
from edge.grade.quality import check_device, check_frame, sharpness
from edge.synth import render_scene

CFG = GradingConfig()


def crop_of(blur: float, seed: int = 5) -> np.ndarray:
    r = render_scene(np.random.default_rng(seed), 1280, 720, defects={}, fill=0.85, blur_sigma=blur, exposure=1.0)
    return warp_canonical(r.image, r.quad, (768, 1536), 0.03)


def test_dark_frame_is_refused() -> None:
    r = render_scene(np.random.default_rng(2), 640, 360, defects={}, exposure=0.04)
    assert "dark" in (check_frame(r.image, CFG) or "")
    assert check_frame(render_scene(np.random.default_rng(2), 640, 360, defects={}, exposure=1.0).image, CFG) is None


def test_sharpness_falls_with_blur_and_gates_it() -> None:
    sharp, soft = crop_of(0.0), crop_of(6.0)
    assert sharpness(sharp) > 2 * sharpness(soft)
    assert check_device(sharp, CFG).reason is None
    assert "blurred" in (check_device(soft, CFG).reason or "")


def test_sharpness_ignores_noise() -> None:
    # Sensor noise on a blurred photo must not make it look sharp.
    soft = crop_of(6.0)
    noisy = cv2.add(soft, np.random.default_rng(0).integers(0, 12, soft.shape, dtype=np.uint8))
    assert check_device(noisy, CFG).reason is not None


def test_glare_is_refused() -> None:
    crop = crop_of(0.0)
    crop[100:1400, 50:700] = 255
    assert "glare" in (check_device(crop, CFG).reason or "")
