"""Local API benchmark: /api/process latency for six uploaded 12 MP JPEGs, and upload throughput.

Runs the real Booth (real model) behind the real ApiServer on a free loopback port, in a temp
folder. Usage: python bench/bench_api.py [--sessions 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from edge.api.server import ApiServer
from edge.config.load import load_config
from edge.daemon.wiring import build
from edge.synth import render_scene

IMEI = "490154203237518"
KEY = "bench-key"
SECTIONS = ["front"] * 4 + ["back"] * 2
WIDTH, HEIGHT = 4032, 3024  # 12 MP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, photos: Path, threads: int) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        f"""
[booth]
id = "bench-booth"
sections = ["front", "back"]
state_dir = "state"

[cameras.cam]
backend = "replay"
folder = "{photos}"

[rig.sections.front]
camera = "cam"

[rig.sections.back]
camera = "cam"

[model]
threads = {threads}

[api]
port = {free_port()}
keys = ["{KEY}"]

[mqtt]
enabled = false

[cloud]
mode = "off"
"""
    )
    return path


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(12)
        photos = folder / "photos"
        jpegs: list[bytes] = []
        for i, section in enumerate(SECTIONS):
            render = render_scene(rng, WIDTH, HEIGHT, face=section, jpeg_quality=92)
            (photos / section).mkdir(parents=True, exist_ok=True)
            (photos / section / f"{i}.jpg").write_bytes(render.jpeg)
            jpegs.append(render.jpeg)
        total_mb = sum(len(j) for j in jpegs) / 1e6
        print(f"six 12 MP JPEGs, {total_mb:.1f} MB in all")

        booth = build(load_config(write_config(folder, photos, args.threads)))
        booth.booth.start()
        server = ApiServer(booth.booth, booth.uploads, booth.metrics)
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        upload_s: list[float] = []
        process_s: list[float] = []
        statuses: dict[str, int] = {}
        try:
            with httpx.Client(base_url=base, timeout=600) as http:
                for _ in range(args.sessions):
                    images = []
                    for i, (section, data) in enumerate(zip(SECTIONS, jpegs, strict=True)):
                        started = time.perf_counter()
                        response = http.post(
                            "/api/upload",
                            files={"image": (f"{section}-{i}.jpg", data, "image/jpeg")},
                            data={"section": section, "imei": IMEI},
                        )
                        upload_s.append(time.perf_counter() - started)
                        response.raise_for_status()
                        images.append({"url": response.json()["url"], "section": section})
                    started = time.perf_counter()
                    response = http.post("/api/process", json={"key": KEY, "imei": IMEI, "images": images})
                    process_s.append(time.perf_counter() - started)
                    status = response.json().get("status", f"http {response.status_code}")
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            server.stop()
            booth.booth.stop()
            booth.close()

    mb_each = total_mb / len(SECTIONS)
    print(f"sessions: {args.sessions}, outcomes: {statuses}")
    print(
        f"/api/process (six 12 MP JPEGs): p50 {percentile(process_s, 50):.2f} s, "
        f"p95 {percentile(process_s, 95):.2f} s, mean {statistics.mean(process_s):.2f} s"
    )
    print(
        f"/api/upload: {len(upload_s)} uploads, p50 {percentile(upload_s, 50) * 1000:.0f} ms, "
        f"p95 {percentile(upload_s, 95) * 1000:.0f} ms, "
        f"{len(upload_s) / sum(upload_s):.1f} images/s, {len(upload_s) * mb_each / sum(upload_s):.1f} MB/s"
    )


if __name__ == "__main__":
    main()
