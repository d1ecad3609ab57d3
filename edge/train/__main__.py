"""``python -m edge.train`` / ``edge-grader-train``: make data, train, export int8 TFLite, evaluate.

Writes <out>/booth-defects.tflite, <out>/booth-defects.json (metadata and metrics) and
<out>/README.md (the model card). Nothing is downloaded: every image is rendered here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from edge.train.card import write_card
from edge.train.spec import CANON_H, CANON_W, IGNORE, LABELS, MARGIN, NOMINAL_LENGTH_MM, STRIDE

if TYPE_CHECKING:
    import keras

    from edge.train.weak import WeakPhoto

NAME = "booth-defects"
VERSION = "1.2.0"
# Loss weight per label: defect cells are rare next to clean glass.
CLASS_WEIGHTS = np.array([1.0, 4.0, 3.0, 6.0, 2.0], np.float32)


def _augment(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flips and a brightness/contrast jitter, drawn per batch (the data are upright crops)."""
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, :, ::-1]
    if rng.random() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    if rng.random() < 0.5:
        x, y = x.transpose(0, 2, 1, 3), y.transpose(0, 2, 1)
    gain = rng.uniform(0.8, 1.2, (len(x), 1, 1, 1)).astype(np.float32)
    bias = rng.uniform(-12, 12, (len(x), 1, 1, 1)).astype(np.float32)
    return np.clip(x.astype(np.float32) * gain + bias, 0, 255), np.ascontiguousarray(y)


def _seeds(seed: int, offset: int, count: int) -> list[int]:
    base = seed * 10 + offset
    return list(range(base, base + count))


def train(args: argparse.Namespace) -> None:
    import keras

    from edge.train.data import make_canonicals, make_patches
    from edge.train.export import to_tflite
    from edge.train.model import build, count_macs

    t0 = time.time()
    keras.utils.set_random_seed(args.seed)
    print(f"rendering {args.renders} training photos ...", flush=True)
    x, y = make_patches(_seeds(args.seed, 0, args.renders), args.patches, args.workers)
    counts = {LABELS[i]: int((y == i).sum()) for i in range(len(LABELS))}
    print(f"{len(x)} patches in {time.time() - t0:.0f}s; cells per label {counts}", flush=True)
    representative = [c.crop for c in make_canonicals(_seeds(args.seed, 3_000_000, 24), args.workers)]

    weak: list[WeakPhoto] = []
    if args.real:
        from edge.train.weak import load_weak

        weak = load_weak(Path(args.real))
        print(f"{len(weak)} real photos for weak supervision", flush=True)

    model = build()
    batches = len(x) // args.batch
    steps = args.epochs * (batches + (batches // args.real_every if weak else 0))
    lr = keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.05, warmup_target=None)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        losses: list[float] = []
        weak_losses: list[float] = []
        for b in range(batches):
            idx = np.sort(order[b * args.batch : (b + 1) * args.batch])
            xb, yb = _augment(rng, x[idx], y[idx])
            weights = np.where(yb == IGNORE, 0.0, CLASS_WEIGHTS[np.minimum(yb, len(LABELS) - 1)])
            losses.append(float(model.train_on_batch(xb, np.where(yb == IGNORE, 0, yb), sample_weight=weights)))
            if weak and b % args.real_every == 0:
                weak_losses.append(_weak_step(model, rng, weak, args.real_batch))
        weak_note = f", real photos {np.mean(weak_losses):.4f}" if weak_losses else ""
        print(
            f"epoch {epoch + 1}/{args.epochs} loss {np.mean(losses):.4f}{weak_note} at {time.time() - t0:.0f}s",
            flush=True,
        )

    blob, fixed = to_tflite(model, representative)
    print(f"exported {len(blob) / 1e6:.2f} MB at {time.time() - t0:.0f}s", flush=True)
    meta = {
        "name": NAME,
        "version": VERSION,
        "labels": list(LABELS),
        "input_shape": [1, CANON_H, CANON_W, 3],
        "input_layout": "canonical upright device crop, BGR, int8 = pixel - 128",
        "output_grid": [CANON_H // STRIDE, CANON_W // STRIDE],
        "stride": STRIDE,
        "canonical_size": [CANON_W, CANON_H],
        "canonical_margin": MARGIN,
        "nominal_device_length_mm": NOMINAL_LENGTH_MM,
        "nominal_px_per_mm": round(CANON_H / (1 + 2 * MARGIN) / NOMINAL_LENGTH_MM, 4),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "training": {
            "seed": args.seed,
            "renders": args.renders,
            "patches": len(x),
            "epochs": args.epochs,
            "seconds": round(time.time() - t0),
            "held_out_renders": args.test,
            "real_photos": len(weak),
        },
        "macs": count_macs(fixed),
        "parameters": int(fixed.count_params()),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.tflite").write_bytes(blob)
    measure(blob, meta, args, out)
    if args.real:
        measure_real(Path(args.real), out)
        measure_renders_again(out, args)
    print(f"wrote {out} in {time.time() - t0:.0f}s", flush=True)


def _weak_step(model: keras.Model, rng: np.random.Generator, weak: list[WeakPhoto], size: int) -> float:
    """One optimizer step on whole real crops with the image-level loss of edge.train.weak."""
    import tensorflow as tf

    from edge.train.weak import weak_batch, weak_loss

    xb, labels = weak_batch(rng, weak, size)
    with tf.GradientTape() as tape:
        loss = weak_loss(model(xb, training=True), labels)
    variables = model.trainable_variables
    model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    return float(loss)


def measure(blob: bytes, meta: dict[str, object], args: argparse.Namespace, out: Path) -> None:
    """Pick thresholds on the validation renders, measure on the held-out ones, write metadata and card."""
    from edge.train.data import make_canonicals
    from edge.train.evaluate import TfliteModel, evaluate, pick_thresholds

    seed = int(meta["training"]["seed"])  # type: ignore[index]
    val = make_canonicals(_seeds(seed, 1_000_000, args.val), args.workers)
    test = make_canonicals(_seeds(seed, 2_000_000, args.test), args.workers)
    tfl = TfliteModel(blob, threads=2)
    thresholds = pick_thresholds(tfl, val)
    tfl.invoke_ms.clear()
    metrics = evaluate(tfl, test, thresholds)
    latency = float(np.median(tfl.invoke_ms))
    print(json.dumps({"thresholds": thresholds, "metrics": metrics, "invoke_ms": latency}, indent=1), flush=True)
    meta = {**meta, "thresholds": thresholds, "metrics": metrics, "invoke_ms_x86_2_threads": round(latency, 1)}
    (out / f"{NAME}.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_card(out / "README.md", meta)


def measure_real(folder: Path, out: Path) -> None:
    """Pick the dirt threshold and crack_confirm on real photos and measure the whole pipeline on
    them (metadata and card).

    The thresholds are picked on the calibration and MSD training parts of the fixed split; the
    held-out part only ever reports (``edge.train.labelled_photos``). The dirt threshold first
    (the model is less sure of real oil and stains than of rendered dirt), then crack_confirm with it.
    """
    from edge.config.model import GradingConfig, ModelConfig
    from edge.grade.pipeline import Grader
    from edge.train.labelled_photos import (
        Answer,
        grade_photos,
        load_labels,
        pick_crack_confirm,
        pick_dirt,
        split,
        table,
    )

    photos = load_labels(folder)
    parts = split(photos)
    model = out / f"{NAME}.tflite"
    picking = [p for p in photos if parts[p.file] != "holdout"]

    def graded(**thresholds: float) -> list[Answer]:
        grader = Grader(ModelConfig(path=model, threads=2, thresholds=thresholds), GradingConfig())  # type: ignore[arg-type]
        return grade_photos(grader, folder, picking)

    dirt = pick_dirt(lambda t: graded(dirt=t))
    crack_confirm = pick_crack_confirm(graded(dirt=dirt, crack_confirm=1e-6))
    meta = json.loads((out / f"{NAME}.json").read_text())
    meta["thresholds"]["dirt"] = dirt
    meta["thresholds"]["crack_confirm"] = crack_confirm
    (out / f"{NAME}.json").write_text(json.dumps(meta, indent=2) + "\n")
    answers = grade_photos(Grader(ModelConfig(path=model, threads=2), GradingConfig()), folder, photos)
    held_out = [a for a in answers if parts[a.photo.file] == "holdout"]
    meta["real_photos"] = {"photos": len(photos), "held_out": len(held_out), "table_all": table(answers),
                           "table_held_out": table(held_out)}  # fmt: skip
    print(f"dirt {dirt}, crack_confirm {crack_confirm}\n{meta['real_photos']['table_held_out']}", flush=True)
    (out / f"{NAME}.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_card(out / "README.md", meta)


def measure_renders_again(out: Path, args: argparse.Namespace) -> None:
    """The held-out render metrics at the thresholds the real photos re-picked (dirt), for the card."""
    from edge.train.data import make_canonicals
    from edge.train.evaluate import TfliteModel, evaluate

    meta = json.loads((out / f"{NAME}.json").read_text())
    test = make_canonicals(_seeds(int(meta["training"]["seed"]), 2_000_000, args.test), args.workers)
    tfl = TfliteModel((out / f"{NAME}.tflite").read_bytes(), threads=2)
    meta["metrics"] = evaluate(tfl, test, {k: v for k, v in meta["thresholds"].items() if k != "crack_confirm"})
    (out / f"{NAME}.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_card(out / "README.md", meta)


def rethreshold(args: argparse.Namespace) -> None:
    """Re-pick thresholds and re-measure a trained model, e.g. after the pipeline's rules changed."""
    out = Path(args.out)
    blob = (out / f"{NAME}.tflite").read_bytes()
    meta = json.loads((out / f"{NAME}.json").read_text())
    if meta.get("sha256") != hashlib.sha256(blob).hexdigest():
        raise SystemExit(f"{out / NAME}.json does not describe {out / NAME}.tflite (sha256 differs)")
    meta["training"]["held_out_renders"] = args.test
    measure(blob, meta, args, out)
    if args.real:
        measure_real(Path(args.real), out)
        measure_renders_again(out, args)
    print(f"re-measured {out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="edge-grader-train", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="models", help="directory for the model, metadata and card")
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--renders", type=int, default=1400, help="training photos to render")
    p.add_argument("--patches", type=int, default=8, help="training patches cut from each photo")
    p.add_argument("--val", type=int, default=60, help="photos for picking the thresholds")
    p.add_argument("--test", type=int, default=120, help="held-out photos for the metrics")
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="render processes")
    p.add_argument("--real", help="real photos folder (labels.csv); its MSD training part is weak supervision")
    p.add_argument("--real-every", type=int, default=6, help="one step on real photos every N synthetic batches")
    p.add_argument("--real-batch", type=int, default=2, help="real photos per step (whole crops)")
    p.add_argument(
        "--rethreshold",
        action="store_true",
        help="do not train: re-pick the thresholds and re-measure the model already in --out",
    )
    args = p.parse_args(argv)
    (rethreshold if args.rethreshold else train)(args)


if __name__ == "__main__":
    main()
