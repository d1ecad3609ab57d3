"""Training and evaluation data: renders warped to the canonical view, with per-cell labels."""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import Pool, get_context

import cv2
import numpy as np

from edge.contract import DEFECT_KINDS
from edge.grade.locate import canonical_transform
from edge.synth import render_scene
from edge.train.spec import CANON_H, CANON_W, IGNORE, IGNORE_FRACTION, LABEL_FRACTION, MARGIN, PATCH, STRIDE

# Which class a cell takes when several cover it: the worse damage wins.
_PRIORITY = ("dirt", "scratch", "chip", "crack")


@dataclass
class Canonical:
    crop: np.ndarray  # uint8 CANON_H x CANON_W x 3
    labels: np.ndarray  # uint8 grid CANON_H/STRIDE x CANON_W/STRIDE, LABELS index or IGNORE


def render_canonical(seed: int, jitter: bool = True) -> Canonical:
    """Render a booth photo at a realistic scale and warp it as the pipeline would."""
    rng = np.random.default_rng(seed)
    device_px = CANON_H * rng.uniform(0.6, 1.35)
    # Only the device and its margin reach the model, so the frame is kept tight to save time.
    fill = rng.uniform(0.72, 0.93)
    long_side = int(device_px / fill)
    short_side = int(long_side * (0.5625 if rng.random() < 0.6 else 0.75))
    r = render_scene(rng, long_side, short_side, variety=True)
    assert r.quad is not None
    quad = r.quad.copy()
    if rng.random() < 0.5:  # the locator cannot tell top from bottom
        quad = np.roll(quad, 2, axis=0)
    if jitter:  # the locator's corners are a few pixels off; teach the model not to care
        quad += rng.normal(0, 0.008 * device_px, quad.shape).astype(np.float32)
    m = canonical_transform(quad, (CANON_W, CANON_H), MARGIN)
    size = (CANON_W, CANON_H)
    crop = cv2.warpPerspective(r.image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Canonical(crop, cell_labels({c: cv2.warpPerspective(r.masks[c], m, size) for c in DEFECT_KINDS}))


def cell_labels(masks: dict[str, np.ndarray]) -> np.ndarray:
    gh, gw = CANON_H // STRIDE, CANON_W // STRIDE
    labels = np.zeros((gh, gw), np.uint8)
    grazed = np.zeros((gh, gw), bool)
    for cls in _PRIORITY:
        frac = cv2.resize(masks[cls].astype(np.float32) / 255, (gw, gh), interpolation=cv2.INTER_AREA)
        labels[frac >= LABEL_FRACTION] = DEFECT_KINDS.index(cls) + 1
        grazed |= frac >= IGNORE_FRACTION
    labels[grazed & (labels == 0)] = IGNORE
    return labels


def _patches(args: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, per_render = args
    c = render_canonical(seed)
    rng = np.random.default_rng(seed + 7_000_000)
    cells = PATCH // STRIDE
    gh, gw = c.labels.shape
    damaged = np.argwhere((c.labels > 0) & (c.labels != IGNORE))
    xs, ys = [], []
    for i in range(per_render):
        if len(damaged) and i < per_render // 2:
            cy, cx = damaged[rng.integers(len(damaged))]
            oy = int(np.clip(cy - rng.integers(2, cells - 2), 0, gh - cells))
            ox = int(np.clip(cx - rng.integers(2, cells - 2), 0, gw - cells))
        elif i % 2:
            # Hard negatives: the outline, rounded corners and rim light, where clean glass
            # meets the background and false defects are most likely.
            oy = int(rng.choice([0, gh - cells])) if rng.random() < 0.5 else int(rng.integers(0, gh - cells + 1))
            ox = int(rng.choice([0, gw - cells]))
        else:
            oy, ox = int(rng.integers(0, gh - cells + 1)), int(rng.integers(0, gw - cells + 1))
        ys.append(c.labels[oy : oy + cells, ox : ox + cells])
        xs.append(c.crop[oy * STRIDE : (oy + cells) * STRIDE, ox * STRIDE : (ox + cells) * STRIDE])
    return np.stack(xs), np.stack(ys)


def _one_thread() -> None:
    cv2.setNumThreads(1)  # the pool already fills the cores


def make_patches(seeds: list[int], per_render: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    with Pool(workers, initializer=_one_thread) as pool:
        parts = pool.map(_patches, [(s, per_render) for s in seeds], chunksize=8)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def make_canonicals(seeds: list[int], workers: int) -> list[Canonical]:
    # Spawned, not forked: a fork after OpenCV or the interpreter have started their threads (the
    # real-photo measurement runs first) can leave a worker waiting on a lock forever.
    with get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
        return pool.starmap(render_canonical, [(s, False) for s in seeds], chunksize=4)
