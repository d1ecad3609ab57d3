"""The device locator and the canonical warp, against the renderer's ground-truth corners."""

from __future__ import annotations

import numpy as np
import pytest

from edge.grade.locate import locate, order_quad, warp_canonical
from edge.synth import render_scene


def corner_error(found: np.ndarray, truth: np.ndarray) -> float:
    """Largest corner distance, allowing the 180° turn the locator cannot tell apart."""
    return min(float(np.abs(found - np.roll(truth, k, axis=0)).max()) for k in (0, 2))


@pytest.mark.parametrize("colour", ["black", "white", "blue"])
def test_finds_the_device_corners(colour: str) -> None:
    # A black phone on dark, coarse felt of the same grey can be missed (one of these six is);
    # a miss is a retake, never a wrong crop, so found corners must all be right.
    errors = []
    for seed in range(6):
        r = render_scene(np.random.default_rng([seed, 77]), 1280, 720, colour=colour, defects={})
        loc = locate(r.image, 0.03, (1.6, 2.6))
        if loc is not None:
            errors.append(corner_error(loc.quad, r.quad) / 1280)
    assert len(errors) >= 5
    assert max(errors) < 0.025, errors


def test_empty_booth_has_no_device() -> None:
    for seed in range(5):
        r = render_scene(np.random.default_rng([seed, 78]), 1280, 720, with_device=False)
        assert locate(r.image, 0.03, (1.6, 2.6)) is None


def test_order_quad_gives_a_portrait_crop() -> None:
    # A landscape rectangle: the short sides come first and last, so the crop stands upright.
    box = np.float32([[100, 50], [500, 50], [500, 250], [100, 250]])
    q = order_quad(box)
    assert np.linalg.norm(q[1] - q[0]) == pytest.approx(200)
    assert np.linalg.norm(q[3] - q[0]) == pytest.approx(400)
    img = np.zeros((300, 600, 3), np.uint8)
    img[50:250, 100:500] = 200
    crop = warp_canonical(img, q, (100, 200), 0.0)
    assert crop.shape == (200, 100, 3)
    assert crop[5:-5, 5:-5].min() == 200
