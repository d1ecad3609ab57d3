"""Helpers of the local API tests: a live uvicorn server on a free loopback port, test images."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from edge.api.server import ApiServer
from edge.config.load import load_config
from edge.config.root import AppConfig
from edge.daemon.wiring import Daemon, build
from tests.booth_support import free_port, write_config

API_KEY = "test-key"


def stopped_booth(config: AppConfig) -> Daemon:
    """The real daemon's parts, its booth stopped before its session worker ever ran, as while it shuts down.

    Everything the API checks before it hands work to the booth (keys, IMEIs, sections, files,
    URLs, paths, body sizes) runs for real against it; a request that gets through to the booth is
    refused by the booth itself, as stopping.
    """
    daemon = build(config)
    daemon.booth.stop()
    return daemon


def booth_config(folder: Path, images: Path, extra_api: str = "") -> AppConfig:
    port = free_port()
    path = write_config(folder, images, api_port=port)
    if extra_api:
        path.write_text(path.read_text().replace('keys = ["test-key"]', f'keys = ["test-key"]\n{extra_api}'))
    return load_config(path)


@contextmanager
def live_api(daemon: Daemon) -> Iterator[str]:
    """Serve the daemon's booth with the real ApiServer; yields the base URL."""
    server = ApiServer(daemon.booth, daemon.uploads, daemon.metrics)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def phone_jpeg(width: int = 800, height: int = 600, seed: int = 0, quality: int = 90) -> bytes:
    """A real JPEG: a dark rounded phone body on a light table, with a lens or two."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 205, np.uint8)
    img += rng.integers(0, 12, img.shape, dtype=np.uint8)
    x0, y0, x1, y1 = width // 4, height // 8, width * 3 // 4, height * 7 // 8
    cv2.rectangle(img, (x0, y0), (x1, y1), (30, 30, 34), thickness=-1, lineType=cv2.LINE_AA)
    cv2.circle(img, (x0 + 40, y0 + 40), 18, (70, 70, 80), thickness=-1, lineType=cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def phone_png(width: int = 320, height: int = 240) -> bytes:
    img = np.full((height, width, 3), 200, np.uint8)
    cv2.rectangle(img, (80, 30), (240, 210), (20, 20, 20), thickness=-1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def raw_http(port: int, request: bytes, timeout: float = 30.0) -> bytes:
    """Send bytes as they are (no client library fixes them up) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)
