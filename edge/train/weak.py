"""Real photos with image-level labels as weak supervision for the per-cell model.

Only the ``train`` part of the MSD photos is used (``edge.train.labelled_photos.split``). Each photo is
located and warped like the pipeline does, and its label becomes a loss on the whole crop:

- good, oil, stain: no cell is a scratch, crack or chip;
- scratch: no cell is a crack or chip, and at least one cell is a scratch (the most likely one);
- oil, stain: at least one cell is dirt.

"At least one" is multiple-instance learning: the loss pulls up the single most probable cell of
the class, so the model learns where without anyone drawing a box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.grade.locate import locate, warp_canonical
from edge.train.labelled_photos import load_labels, split
from edge.train.spec import CANON_H, CANON_W, LABELS, MARGIN

if TYPE_CHECKING:
    import tensorflow as tf

_EPS = 1e-6
_SCRATCH, _CRACK, _CHIP, _DIRT = (LABELS.index(k) for k in ("scratch", "crack", "chip", "dirt"))
# Locator settings as the pipeline's defaults; MSD photos are plain booth-like shots.
_MIN_AREA, _ASPECT = 0.03, (1.6, 2.6)


@dataclass(frozen=True)
class WeakPhoto:
    crop: np.ndarray  # uint8 CANON_H x CANON_W x 3
    label: str  # good, oil, stain or scratch


def load_weak(folder: Path) -> list[WeakPhoto]:
    """The MSD training part, warped to the canonical view; photos the locator misses are skipped."""
    photos = load_labels(folder)
    parts = split(photos)
    out = []
    for p in photos:
        if parts[p.file] != "train":
            continue
        image = cv2.imread(str(folder / p.file), cv2.IMREAD_COLOR)
        loc = None if image is None else locate(image, _MIN_AREA, _ASPECT)
        if loc is None:
            continue
        out.append(WeakPhoto(warp_canonical(image, loc.quad, (CANON_W, CANON_H), MARGIN), p.label))
    return out


def weak_loss(probs: tf.Tensor, labels: list[str]) -> tf.Tensor:
    """The loss of a batch of whole crops (``probs``: B x gh x gw x classes) given their labels."""
    import tensorflow as tf

    terms = []
    for i, label in enumerate(labels):
        p = probs[i]
        damage = p[..., _CRACK] + p[..., _CHIP]
        if label != "scratch":
            damage = damage + p[..., _SCRATCH]
        terms.append(tf.reduce_mean(-tf.math.log(tf.maximum(1.0 - damage, _EPS))))
        if label == "scratch":
            terms.append(-tf.math.log(tf.reduce_max(p[..., _SCRATCH]) + _EPS))
        if label in ("oil", "stain"):
            terms.append(-tf.math.log(tf.reduce_max(p[..., _DIRT]) + _EPS))
    return tf.add_n(terms) / len(labels)


def weak_batch(rng: np.random.Generator, photos: list[WeakPhoto], size: int) -> tuple[np.ndarray, list[str]]:
    """A batch of whole crops with a random flip each (the labels do not depend on orientation)."""
    idx = rng.choice(len(photos), size, replace=False)
    crops = []
    for i in idx:
        c = photos[i].crop
        if rng.random() < 0.5:
            c = c[:, ::-1]
        if rng.random() < 0.5:
            c = c[::-1]
        gain, bias = rng.uniform(0.85, 1.15), rng.uniform(-10, 10)
        crops.append(np.clip(c.astype(np.float32) * gain + bias, 0, 255))
    return np.stack(crops), [photos[i].label for i in idx]
