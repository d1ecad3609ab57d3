"""From frame to result: a six-photo session of 12 MP frames through the booth's own capture and
grading code, against the same session graded from its stored JPEGs (the recovery path).

Each figure runs in a child process of its own, so its peak RSS is that path's alone:

- grader from frames: the six frames already in memory, ``Grader.grade`` only; per photo against a
  bare invoke of the model (the issue's "per-photo cost / bare invoke"), and the least that ratio
  could be for the CPU time the session took, were every core busy throughout, and for the work
  every photo needs however the phone is found (``fixed_work``);
- booth from frames: ``SessionGrading.capture_and_finish`` with a stand-in camera (a process of its
  own) that hands out a new 4056x3040 frame per shot (as picamera2's ``make_array`` does), the spool
  on a temporary folder
  (JPEG encoded and written with fsync beside grading), overlays and the result committed to SQLite;
- booth from stored JPEGs: ``SessionGrading.grade_and_finish`` on the sessions the run above
  stored, in a new process as after a restart.

- each operation alone, one photo at a time, for the 12 MP frames and for the 1080p demo photos of
  the replay cameras (what bench_session.py's sessions are): the figures the Raspberry Pi estimate
  is built from. Each is scaled by a per-core factor (PI_FACTORS); a session is then estimated as
  a pipeline on the Pi's four cores: one photo through every stage, then each further photo after
  the slowest stage or the total work shared by four cores, whichever is longer.

The children run with the systemd unit's environment (glibc's malloc settings), as the daemon does.

    python bench/bench_frames.py [--repeat 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
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
from bench.unit_env import unit_environment  # noqa: E402
from edge.config.storage import StorageConfig  # noqa: E402
from tests.booth_support import render_booth_images  # noqa: E402

# Per-core slowdown of a Raspberry Pi against this machine (an x86-64 Xeon at 2.8 GHz with AVX2).
# Pi 4 (Cortex-A72, 1.8 GHz, NEON): the model's own published scaling (int8 MobileNet v2, ~300 M
# MACs in 17-20 ms there, bench_grading's estimate) against its measured invoke here gives 3.3-3.9x;
# OpenCV's resize, warp and the JPEG codec are memory-bound and fare a little worse: 4x is taken
# for every stage. Pi 5 (Cortex-A76, 2.4 GHz) runs the same code 2-2.5x faster than a Pi 4: 2x.
PI_FACTORS = {"Pi 4": 4.0, "Pi 5": 2.0}
PI_CORES = 4
SHOT_STAGES = ("decode", "preprocess", "inference", "postprocess")
JPEG_QUALITY = StorageConfig().jpeg_quality
JPEG_BANDS = StorageConfig().jpeg_threads
# The booth's threads for one photo, and the share of each operation (bench names, see operations())
# each runs: a camera photo's JPEG is encoded in bands, one on the camera thread, the rest beside it.
PIPELINE = {
    "feed (camera thread)": {"camera": 1.0, "reduce": 1.0, "encode": 1 / JPEG_BANDS, "write": 1.0},
    "JPEG bands (beside it)": {"encode": 1 - 1 / JPEG_BANDS},
    "prepare": {"gate": 1.0, "locate": 1.0, "warp": 1.0, "check": 1.0, "overlay base": 1.0},
    "model and finish": {"invoke": 1.0, "defects": 1.0, "overlay": 1.0},
}


# The stand-in camera's frames cross the pipe in pieces of this size: a Connection reads a whole
# message into a buffer of its own before copying it, which for one 37 MB message is a second
# frame that no camera's driver would hold.
_CHUNK = 1 << 20


def _pieces(frame: np.ndarray) -> list[memoryview]:
    """A frame's bytes as the pieces that cross the pipe, in order."""
    view = memoryview(frame).cast("B")
    return [view[start : start + _CHUNK] for start in range(0, len(view), _CHUNK)]


class _Camera:
    """A camera stand-in in a process of its own: it holds the session's decoded frames and sends
    one per shot through a pipe into a new array here, as picamera2's ``make_array`` copies a
    buffer. The booth's process then holds what it would hold with a real camera, no decoder's."""

    name = "cam"

    def __init__(self, files: dict[str, list[Path]]) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._conn, theirs = spawn.Pipe()
        self._proc = spawn.Process(target=_serve_frames, args=(theirs, files), daemon=True)
        self._proc.start()

    def open(self) -> None: ...

    def capture(self, section: str) -> Any:
        from edge.capture.frames import Frame

        self._conn.send(section)
        image = np.empty(self._conn.recv(), np.uint8)
        for piece in _pieces(image):
            self._conn.recv_bytes_into(piece)
        return Frame(image)

    def close(self) -> None:
        self._conn.close()
        self._proc.join(10)


def _serve_frames(conn: Any, files: dict[str, list[Path]]) -> None:
    frames = {section: [cv2.imread(str(path)) for path in paths] for section, paths in files.items()}
    shots = dict.fromkeys(frames, 0)
    while True:
        try:
            section = conn.recv()
        except EOFError:
            return
        frame = frames[section][shots[section] % len(frames[section])]
        shots[section] += 1
        conn.send(frame.shape)
        for piece in _pieces(frame):
            conn.send_bytes(piece)


def operations(photos: list[bytes], threads: int, repeat: int, replay: bool) -> dict[str, float]:
    """Median ms of each operation on one photo, run alone: the grader's steps one by one, and the
    feed's (the replay camera's decode of its file, or the JPEG encode of a camera's frame; the
    write with fsync)."""
    from edge.capture.frames import JpegEncoder
    from edge.config.model import GradingConfig, ModelConfig
    from edge.grade import Grader
    from edge.grade.decode import reduce_frame
    from edge.grade.detect import find_defects
    from edge.grade.locate import canonical_transform, locate, quad_sides
    from edge.grade.overlay import overlay_base, render_overlay
    from edge.grade.quality import check_device, check_frame
    from edge.spool.files import atomic_write

    cfg = GradingConfig()
    grader = Grader(ModelConfig(threads=threads), cfg)
    size, margin = grader._size, grader._runtime.meta.margin
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Any, *args: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        out = fn(*args, **kw)
        times.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return out

    with tempfile.TemporaryDirectory(prefix="bench-ops-") as tmp:
        for n in range(repeat):
            for i, data in enumerate(photos):
                frame = timed("camera" if replay else "decode file", cv2.imdecode, np.frombuffer(data, np.uint8),
                              cv2.IMREAD_COLOR)  # fmt: skip
                stored = data if replay else timed("encode", JpegEncoder(JPEG_QUALITY).encode, frame)
                timed("write", atomic_write, Path(tmp) / f"{n}-{i}.jpg", stored)
                dec = timed("reduce", reduce_frame, frame, cfg.decode_long_side)
                timed("gate", check_frame, dec.image, cfg)
                loc = timed("locate", locate, dec.image, cfg.min_device_area, cfg.device_aspect)
                if loc is None:
                    continue
                m = canonical_transform(loc.quad, size, margin)
                crop = timed("warp", cv2.warpAffine, dec.image, m[:2], size, flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
                timed("check", check_device, crop, cfg, quad_sides(loc.quad)[0])
                probs = timed("invoke", grader._runtime.run, crop)[..., grader._order]
                geom = grader._geometry(loc, None, dec.scale)
                found = timed("defects", find_defects, probs, grader._thresholds, crop, geom, cfg, i)
                base, f = timed("overlay base", overlay_base, dec.image, cfg.overlay_long_side)
                timed("overlay", render_overlay, base, f, loc.quad, m, size, found, None, cfg.overlay_quality)
    return {name: statistics.median(values) for name, values in times.items()}


def fixed_work(shots: list[tuple[str, bytes]], threads: int, repeat: int) -> tuple[dict[str, float], float]:
    """Median CPU ms, on one core, of the operations every photo needs however the phone is found
    and checked: the frame brought to the grading scale, warped to the model's input, the model,
    and the overlay the result carries; and, beside them so that both see the machine alike, the
    median ms of a bare invoke on ``threads`` interpreter threads."""
    from edge.config.model import GradingConfig, ModelConfig
    from edge.grade.decode import reduce_frame
    from edge.grade.locate import canonical_transform, locate
    from edge.grade.overlay import overlay_base
    from edge.grade.runtime import Runtime

    cv2.setNumThreads(1)
    cfg = GradingConfig()
    runtime = Runtime(ModelConfig(threads=1))
    bare = Runtime(ModelConfig(threads=threads))
    size, margin = runtime.meta.canonical_size, runtime.meta.margin
    times: dict[str, list[float]] = {}
    invokes: list[float] = []

    def cpu(name: str, fn: Any, *args: Any, **kw: Any) -> Any:
        t = time.process_time()
        out = fn(*args, **kw)
        times.setdefault(name, []).append((time.process_time() - t) * 1000)
        return out

    frames = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for _, b in shots]
    for _ in range(repeat):
        for frame in frames:
            image = cpu("reduce", reduce_frame, frame, cfg.decode_long_side).image
            loc = locate(image, cfg.min_device_area, cfg.device_aspect)
            if loc is None:
                continue
            m = canonical_transform(loc.quad, size, margin)
            crop = cpu("warp", cv2.warpAffine, image, m[:2], size, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
            cpu("invoke", runtime.run, crop)
            t = time.perf_counter()
            bare.run(crop)
            invokes.append((time.perf_counter() - t) * 1000)
            base, _ = cpu("overlay base", overlay_base, image, cfg.overlay_long_side)
            cpu("overlay encode", cv2.imencode, ".jpg", base, [cv2.IMWRITE_JPEG_QUALITY, cfg.overlay_quality])
    return {name: statistics.median(values) for name, values in times.items()}, statistics.median(invokes)


def pi_estimate(ops: dict[str, float], photos: int, factor: float) -> tuple[float, dict[str, float]]:
    """Seconds for a session on a Pi, and each thread's ms per photo there (see the module's doc)."""
    stages = {name: sum(ops.get(op, 0.0) * k for op, k in share.items()) * factor for name, share in PIPELINE.items()}
    per_photo = max(max(stages.values()), sum(stages.values()) / PI_CORES)
    return (sum(stages.values()) + (photos - 1) * per_photo) / 1000, stages


def grader_from_frames(
    shots: list[tuple[str, bytes]], threads: int, repeat: int, as_frames: bool = True
) -> dict[str, Any]:
    """``Grader.grade`` alone on the six photos: as the cameras' frames, or as the JPEG files an
    upload's /api/process grades (``as_frames`` False; the peak RSS is then the grading's own)."""
    from edge.config.model import GradingConfig, ModelConfig
    from edge.grade import Grader
    from edge.grade.runtime import Runtime

    frames = [(s, cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)) for s, b in shots] if as_frames else shots
    grader = Grader(ModelConfig(threads=threads), GradingConfig())
    grader.grade(frames[:1])
    walls, cpus, stages = [], [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = grader.grade(frames)
        walls.append((time.perf_counter() - t) * 1000)
        cpus.append((time.process_time() - c) * 1000)
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
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "walls": walls, "cpus": cpus, "stages": stages, "invoke": statistics.median(invokes), "grade": result.grade,
        "rss": rss,
    }  # fmt: skip


def _booth_parts(folder: Path, threads: int) -> tuple[Any, Any, Any]:
    """The booth's config, spool and session grading on a folder of its own."""
    from edge.config import load_config
    from edge.daemon.grading import SessionGrading
    from edge.events import EventBus
    from edge.grade import Grader
    from edge.spool.db import Database
    from edge.spool.sessions import SessionStore
    from tests.booth_support import write_config

    config = load_config(write_config(folder, folder, shots=3, back_shots=3, threads=threads))
    store = SessionStore(Database(folder / "spool.db"), folder / "images")
    grader = Grader(config.model, config.grading)
    return config, store, SessionGrading(config, store, EventBus("bench"), grader, lambda path: path)


def booth_from_frames(photos: list[tuple[str, Path]], folder: Path, threads: int, repeat: int) -> dict[str, Any]:
    """Sessions through the booth's code from frames; their ids and results, and the peak RSS.

    The photos come as files, read only by the stand-in camera: the process holds no input of its
    own, so its peak RSS is the booth's."""
    from edge.capture.rig import CaptureRig

    config, store, grading = _booth_parts(folder, threads)
    files: dict[str, list[Path]] = {}
    for section, path in photos:
        files.setdefault(section, []).append(path)
    rig = CaptureRig(config, cameras={"cam": _Camera(files)})
    out: dict[str, Any] = {"frames": [], "sessions": []}
    for i in range(repeat + 1):  # the first is a warm-up
        session = store.create("490154203237518", "cli", status="capturing")
        t = time.perf_counter()
        record = grading.capture_and_finish(session, rig, lambda: None)
        if i:
            out["frames"].append({"wall": (time.perf_counter() - t) * 1000, **record.result["timings_ms"]})
            out["sessions"].append((record.id, record.status, record.grade))
    out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rig.close()
    return out


def booth_from_stored(folder: Path, sessions: list[tuple[str, str, str | None]], threads: int) -> dict[str, Any]:
    """The same sessions graded again from their stored JPEGs, in a new process as after a restart."""
    _, store, grading = _booth_parts(folder, threads)
    out: dict[str, Any] = {"stored": [], "disagreements": []}
    for session_id, status, grade in sessions:
        t = time.perf_counter()
        again = grading.grade_and_finish(store.get(session_id), from_camera=True)
        out["stored"].append({"wall": (time.perf_counter() - t) * 1000, **again.result["timings_ms"]})
        if (status, grade) != (again.status, again.grade):
            out["disagreements"].append((grade, again.grade))
    out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    os.environ.update(unit_environment())
    spawn = multiprocessing.get_context("spawn")  # a new interpreter: glibc reads the settings at start

    def child(fn: Any, *fn_args: Any) -> Any:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            return pool.submit(fn, *fn_args).result()

    shots = child(render_session)
    print(f"six 4056x3040 photos (JPEG {', '.join(f'{len(b) / 1e6:.1f}' for _, b in shots)} MB), "
          f"{args.repeat} sessions each, interpreter threads {args.threads}")  # fmt: skip

    g = child(grader_from_frames, shots, args.threads, args.repeat)
    per_photo = statistics.median(g["walls"]) / 6
    print("\ngrader alone, from frames in memory:")
    print(f"  session             {_spread(g['walls'])}")
    for stage in SHOT_STAGES:
        print(f"  {stage:<19} {_spread([s[stage] for s in g['stages']])}  (summed over the six photos)")
    print(f"  bare invoke {g['invoke']:.1f} ms; per photo {per_photo:.1f} ms = {per_photo / g['invoke']:.2f} x invoke")
    # The work itself bounds the ratio: were every core busy for the whole session, a photo would
    # still take its CPU time shared out over the cores.
    cores = len(os.sched_getaffinity(0))
    cpu_photo = statistics.median(g["cpus"]) / 6
    print(f"  process CPU per photo {cpu_photo:.1f} ms: on {cores} cores always busy, no less than"
          f" {cpu_photo / cores:.1f} ms per photo = {cpu_photo / cores / g['invoke']:.2f} x invoke")  # fmt: skip
    fixed, invoke = child(fixed_work, shots, args.threads, args.repeat)
    floor = sum(fixed.values())
    print(f"  the work every photo needs, one core ({', '.join(f'{op} {ms:.1f}' for op, ms in fixed.items())}):"
          f" {floor:.1f} ms CPU; on {cores} cores no less than {floor / cores:.1f} ms per photo ="
          f" {floor / cores / invoke:.2f} x a bare invoke run beside it ({invoke:.1f} ms), before the phone is"
          f" found or the photo checked")  # fmt: skip
    u = child(grader_from_frames, shots, args.threads, args.repeat, False)
    print("\ngrader alone, from the JPEG files (an upload's session: /api/process):")
    print(f"  session             {_spread(u['walls'])}")
    print(f"  peak RSS of this path: {u['rss']:.0f} MB")

    with tempfile.TemporaryDirectory(prefix="bench-frames-photos-") as folder:
        files = [(section, Path(folder) / f"{i}.jpg") for i, (section, _) in enumerate(shots)]
        for (_, path), (_, data) in zip(files, shots, strict=True):
            path.write_bytes(data)
        with tempfile.TemporaryDirectory(prefix="bench-frames-") as tmp:
            b = child(booth_from_frames, files, Path(tmp), args.threads, args.repeat)
            again = child(booth_from_stored, Path(tmp), b["sessions"], args.threads)
    frames, stored = b["frames"], again["stored"]
    print("\nbooth, from the cameras' frames (capture, JPEG write with fsync, grading, overlays, commit):")
    print(f"  session             {_spread([r['wall'] for r in frames])}")
    for stage in ("capture", "store", *SHOT_STAGES, "total"):
        print(f"  {stage:<19} {_spread([r[stage] for r in frames])}")
    print(f"  peak RSS of this path: {b['rss']:.0f} MB")
    print("\nbooth, the same sessions from their stored JPEGs in a new process (the recovery path after a restart):")
    print(f"  session             {_spread([r['wall'] for r in stored])}")
    for stage in (*SHOT_STAGES, "total"):
        print(f"  {stage:<19} {_spread([r[stage] for r in stored])}")
    print(f"  peak RSS of this path: {again['rss']:.0f} MB")
    print(f"  grades: {b['sessions'][-1][2]}; frames and stored JPEGs disagreed on {len(again['disagreements'])}"
          f" sessions {again['disagreements'] or ''}")

    # The demo booth's replay photos, rendered as setup renders them when this checkout has none yet.
    demo = sorted(render_booth_images(REPO / "config" / "demo-images").rglob("*.jpg"))[:6]
    sets = {
        "12 MP camera frames (JPEG encoded by the booth)": child(operations, [d for _, d in shots], args.threads,
                                                                 args.repeat, False),
        "1080p replay files (stored as they are)": child(operations, [p.read_bytes() for p in demo], args.threads,
                                                         args.repeat, True),
    }  # fmt: skip
    print("\neach operation alone, one photo, median ms (the estimate's input):")
    for name, ops in sets.items():
        print(f"  {name}: " + ", ".join(f"{op} {ms:.1f}" for op, ms in ops.items()))
    print(f"\nRaspberry Pi estimate of a six-photo session, trigger to result (an estimate, not a measurement:"
          f" each operation x a per-core factor, pipelined on {PI_CORES} cores; the camera's own frame time and"
          f" the commit are not in it; the factors were taken against a 2.8 GHz Xeon, so a faster host reads"
          f" low and a slower one high):")  # fmt: skip
    for name, ops in sets.items():
        for pi, factor in PI_FACTORS.items():
            seconds, stages = pi_estimate(ops, 6, factor)
            staged = ", ".join(f"{stage} {ms:.0f}" for stage, ms in stages.items())
            print(f"  {pi} (x{factor:g}), {name}: {seconds:.2f} s; ms per photo: {staged}")


if __name__ == "__main__":
    main()
