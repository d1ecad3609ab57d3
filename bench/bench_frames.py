"""From frame to result: a six-photo session of 12 MP frames through the booth's own capture and
grading code, against the same session graded from its stored JPEGs (the recovery path).

Each figure runs in a child process of its own, so its peak RSS is that path's alone:

- grader from frames: the six frames already in memory, ``Grader.grade`` only; per photo against a
  bare invoke of the model (the issue's "per-photo cost / bare invoke");
- booth from frames: ``SessionGrading.capture_and_finish`` with a stand-in camera that hands out a
  new 4056x3040 frame per shot (as picamera2's ``make_array`` does), the spool on a temporary folder
  (JPEG encoded and written with fsync beside grading), overlays and the result committed to SQLite;
- booth from stored JPEGs: ``SessionGrading.grade_and_finish`` on the session the run above stored.

A Raspberry Pi estimate follows per stage: each measured time times a per-core factor (see
PI_FACTORS), no credit taken for the Pi's four cores against this machine's two.

    python bench/bench_frames.py [--repeat 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.bench_grading import render_session  # noqa: E402

# Per-core slowdown of a Raspberry Pi against this machine (an x86-64 Xeon at 2.8 GHz with AVX2).
# Pi 4 (Cortex-A72, 1.8 GHz, NEON): the model's own published scaling (int8 MobileNet v2, ~300 M
# MACs in 17-20 ms there, bench_grading's estimate) against its measured invoke here gives 3.2-3.7x;
# OpenCV's resize, warp and the JPEG codec are memory-bound and fare a little worse: 4x is taken
# for every stage. Pi 5 (Cortex-A76, 2.4 GHz) runs the same code 2-2.5x faster than a Pi 4: 2x.
PI_FACTORS = {"Pi 4": 4.0, "Pi 5": 2.0}
SHOT_STAGES = ("decode", "preprocess", "inference", "postprocess")


def _config(folder: Path, threads: int) -> Any:
    from edge.config import load_config

    path = folder / "booth.toml"
    path.write_text(
        f"""
[booth]
id = "bench"
sections = ["front", "back"]
state_dir = "state"

[cameras.cam]
backend = "replay"
folder = "{folder}"

[rig.sections.front]
camera = "cam"
shots = 3

[rig.sections.back]
camera = "cam"
shots = 3

[model]
threads = {threads}

[mqtt]
enabled = false

[cloud]
mode = "off"
"""
    )
    return load_config(path)


class _Camera:
    """A camera stand-in: each shot a new frame, decoded from that shot's photo on disk, so the bench
    holds no frame of its own; the decode is the stand-in's cost, counted in ``capture``."""

    name = "cam"

    def __init__(self, files: dict[str, list[Path]]) -> None:
        self._files = files
        self._next = dict.fromkeys(files, 0)

    def open(self) -> None: ...

    def capture(self, section: str) -> Any:
        from edge.capture.frames import Frame

        path = self._files[section][self._next[section] % len(self._files[section])]
        self._next[section] += 1
        return Frame(cv2.imread(str(path), cv2.IMREAD_COLOR))

    def close(self) -> None: ...


def grader_from_frames(shots: list[tuple[str, bytes]], threads: int, repeat: int) -> dict[str, Any]:
    from edge.config.model import GradingConfig, ModelConfig
    from edge.grade import Grader
    from edge.grade.runtime import Runtime

    frames = [(s, cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)) for s, b in shots]
    grader = Grader(ModelConfig(threads=threads), GradingConfig())
    grader.grade(frames[:1])
    walls, stages = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        result = grader.grade(frames)
        walls.append((time.perf_counter() - t) * 1000)
        stages.append(result.timings_ms)
    runtime = Runtime(ModelConfig(threads=threads))
    w, h = runtime.meta.canonical_size
    crop = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    runtime.run(crop)
    invokes = []
    for _ in range(6 * repeat):
        t = time.perf_counter()
        runtime.run(crop)
        invokes.append((time.perf_counter() - t) * 1000)
    return {"walls": walls, "stages": stages, "invoke": statistics.median(invokes), "grade": result.grade}


def booth(shots: list[tuple[str, bytes]], threads: int, repeat: int) -> dict[str, Any]:
    """Sessions through the booth's code from frames, then each regraded from its stored JPEGs."""
    from edge.capture.rig import CaptureRig
    from edge.daemon.grading import SessionGrading
    from edge.events import EventBus
    from edge.grade import Grader
    from edge.spool.db import Database
    from edge.spool.sessions import SessionStore

    out: dict[str, Any] = {"frames": [], "stored": []}
    with tempfile.TemporaryDirectory(prefix="bench-frames-") as tmp:
        files: dict[str, list[Path]] = {}
        for i, (section, data) in enumerate(shots):
            files.setdefault(section, []).append(Path(tmp) / f"{i}.jpg")
            files[section][-1].write_bytes(data)
        del shots
        config = _config(Path(tmp), threads)
        store = SessionStore(Database(Path(tmp) / "spool.db"), Path(tmp) / "images")
        grader = Grader(config.model, config.grading)
        grading = SessionGrading(config, store, EventBus("bench"), grader, lambda path: path)
        rig = CaptureRig(config, cameras={"cam": _Camera(files)})
        for i in range(repeat + 1):  # the first is a warm-up
            session = store.create("490154203237518", "cli", status="capturing")
            t = time.perf_counter()
            record = grading.capture_and_finish(session, rig, lambda: None)
            wall = (time.perf_counter() - t) * 1000
            rss_frames = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if i:
                out["frames"].append({"wall": wall, **record.result["timings_ms"]})
            t = time.perf_counter()
            again = grading.grade_and_finish(store.get(session.id))
            if i:
                out["stored"].append({"wall": (time.perf_counter() - t) * 1000, **again.result["timings_ms"]})
            if record.grade != again.grade or record.status != again.status:
                out.setdefault("disagreements", []).append((record.grade, again.grade))
        out["rss_frames"] = rss_frames
        out["rss_all"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["grade"] = record.grade
    return out


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(values):6.0f} / p95 {p95:6.0f} ms (min {min(values):.0f}, max {max(values):.0f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="interpreter threads")
    args = p.parse_args()
    with ProcessPoolExecutor(1) as pool:
        shots = pool.submit(render_session).result()
    print(f"six 4056x3040 photos (JPEG {', '.join(f'{len(b) / 1e6:.1f}' for _, b in shots)} MB), "
          f"{args.repeat} sessions each, interpreter threads {args.threads}")  # fmt: skip

    with ProcessPoolExecutor(1) as pool:
        g = pool.submit(grader_from_frames, shots, args.threads, args.repeat).result()
    per_photo = statistics.median(g["walls"]) / 6
    print("\ngrader alone, from frames in memory:")
    print(f"  session             {_spread(g['walls'])}")
    for stage in SHOT_STAGES:
        print(f"  {stage:<19} {_spread([s[stage] for s in g['stages']])}  (summed over the six photos)")
    print(f"  bare invoke {g['invoke']:.1f} ms; per photo {per_photo:.1f} ms = {per_photo / g['invoke']:.2f} x invoke")

    with ProcessPoolExecutor(1) as pool:
        b = pool.submit(booth, shots, args.threads, args.repeat).result()
    frames, stored = b["frames"], b["stored"]
    print("\nbooth, from the cameras' frames (capture, JPEG write with fsync, grading, overlays, commit):")
    print(f"  session             {_spread([r['wall'] for r in frames])}")
    for stage in ("capture", "store", *SHOT_STAGES, "total"):
        print(f"  {stage:<19} {_spread([r[stage] for r in frames])}")
    print(f"  peak RSS of this path: {b['rss_frames']:.0f} MB")
    print("\nbooth, the same sessions from their stored JPEGs (the recovery path):")
    print(f"  session             {_spread([r['wall'] for r in stored])}")
    for stage in (*SHOT_STAGES, "total"):
        print(f"  {stage:<19} {_spread([r[stage] for r in stored])}")
    print(f"  peak RSS with both paths: {b['rss_all']:.0f} MB")
    print(f"  grades: {b['grade']}; frames and stored JPEGs disagreed on {len(b.get('disagreements', []))} sessions")

    print("\nRaspberry Pi estimate (measured here x per-core factor; an estimate, not a measurement):")
    wall = statistics.median(r["wall"] for r in frames)
    parts = {s: statistics.median(r[s] for r in frames) for s in ("capture", "store", *SHOT_STAGES)}
    for pi, factor in PI_FACTORS.items():
        staged = ", ".join(f"{s} {v * factor:.0f}" for s, v in parts.items())
        print(f"  {pi} (x{factor:g}): six-photo session {wall * factor / 1000:.2f} s; per stage ms: {staged}")


if __name__ == "__main__":
    main()
