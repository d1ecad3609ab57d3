"""Held-out evaluation of the exported int8 model, per class, at the defect (blob) level.

Predictions go through the grading pipeline's own cell-to-defect step (edge.grade.detect), so the
thresholds are picked, and the figures measured, for what the booth reports.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from edge.config.model import GradingConfig
from edge.grade.detect import Geometry, blob_labels, find_blobs
from edge.grade.runtime import Network
from edge.train.data import Canonical
from edge.train.spec import CANON_H, IGNORE, LABELS, MARGIN, NOMINAL_LENGTH_MM, STRIDE

# The renders' scale varies about the nominal phone length; the nominal scale is what an
# uncalibrated booth assumes too.
_MM = NOMINAL_LENGTH_MM * (1 + 2 * MARGIN) / CANON_H
GEOMETRY = Geometry(mm_x=_MM, mm_y=_MM, margin=MARGIN, stride=STRIDE)


class TfliteModel:
    """The exported model through the booth's own network wrapper, timing every run."""

    def __init__(self, blob: bytes, threads: int) -> None:
        self.network = Network(blob, threads)
        self.invoke_ms: list[float] = []

    def probs(self, crop: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        out = self.network.run(crop)
        self.invoke_ms.append((time.perf_counter() - t) * 1000)
        return out


def _components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    n, cc = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return n - 1, cc


def blob_counts(pred: np.ndarray, truth: np.ndarray, cls: int) -> tuple[int, int, int, int]:
    """(true blobs found, true blobs, predicted blobs that hit truth, predicted blobs)."""
    kernel = np.ones((3, 3), np.uint8)
    gt = truth == cls
    near_gt = cv2.dilate(gt.astype(np.uint8), kernel) > 0
    near_any = cv2.dilate((truth == IGNORE).astype(np.uint8), kernel) > 0
    n_gt, gt_cc = _components(gt)
    n_pr, pr_cc = _components(pred == cls)
    pr_near = cv2.dilate((pred == cls).astype(np.uint8), kernel) > 0
    found = sum(1 for i in range(1, n_gt + 1) if pr_near[gt_cc == i].any())
    hits, counted = 0, 0
    for i in range(1, n_pr + 1):
        blob = pr_cc == i
        if near_gt[blob].any():
            hits += 1
            counted += 1
        elif not near_any[blob].all():  # a blob only on cells a defect grazes is not counted
            counted += 1
    return found, n_gt, hits, counted


def predict(probs: np.ndarray, crop: np.ndarray, thresholds: list[float], cfg: GradingConfig) -> np.ndarray:
    return blob_labels(find_blobs(probs, thresholds, crop, GEOMETRY, cfg), probs.shape[:2])


def evaluate(model: TfliteModel, data: list[Canonical], thresholds: dict[str, float]) -> dict[str, dict[str, float]]:
    cfg = GradingConfig()
    totals = {c: np.zeros(4, int) for c in LABELS[1:]}
    for item in data:
        pred = predict(model.probs(item.crop), item.crop, [thresholds[c] for c in LABELS[1:]], cfg)
        for i, c in enumerate(LABELS[1:], start=1):
            totals[c] += blob_counts(pred, item.labels, i)
    out = {}
    for c, (found, n_gt, hits, n_pr) in totals.items():
        out[c] = {
            "recall": round(found / n_gt, 3) if n_gt else float("nan"),
            "precision": round(hits / n_pr, 3) if n_pr else float("nan"),
            "true_defects": int(n_gt),
            "predicted": int(n_pr),
        }
    return out


def pick_thresholds(model: TfliteModel, data: list[Canonical]) -> dict[str, float]:
    """Thresholds with the best F0.5 (precision weighted: a false defect costs a grade).

    Scratch and crack share one threshold, as both are tested on their summed probability; it is
    scored on both kinds together. Dirt and chip follow, each with the others fixed.
    """
    cfg = GradingConfig()
    probs = [model.probs(item.crop) for item in data]
    chosen = {c: 0.5 for c in LABELS[1:]}
    beta2 = 0.5**2
    for group in (("scratch", "crack"), ("dirt",), ("chip",)):
        best = (-1.0, 0.5)
        for thr in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
            trial = {**chosen, **dict.fromkeys(group, thr)}
            tot = np.zeros(4, int)
            for p, item in zip(probs, data, strict=True):
                pred = predict(p, item.crop, [trial[c] for c in LABELS[1:]], cfg)
                for c in group:
                    tot += blob_counts(pred, item.labels, LABELS.index(c))
            rec = tot[0] / max(1, tot[1])
            prec = tot[2] / max(1, tot[3])
            f = (1 + beta2) * prec * rec / max(1e-9, beta2 * prec + rec)
            if f > best[0]:
                best = (f, thr)
        chosen.update(dict.fromkeys(group, best[1]))
    return chosen
