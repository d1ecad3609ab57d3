"""Upload memory has a ceiling: concurrent maximal uploads are checked a bounded number at a time."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np

from bench.unit_env import unit_environment
from tests.booth_support import DaemonProcess, api_base, write_config

CONCURRENT = 16
MEGAPIXELS = 16
SLOTS = 2  # [api] max_concurrent_decodes by default
MB = 1024 * 1024


def worst_png() -> bytes:
    """A 16-bit RGBA PNG just under the pixel limit: the most a decode of an accepted upload costs."""
    side = int((MEGAPIXELS * 1_000_000) ** 0.5) - 1
    pixels = np.zeros((side, side, 4), np.uint16)
    pixels[::7, :, 0] = 65535
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return encoded.tobytes()


def memory_kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.M)
    assert match is not None
    return int(match.group(1))


def test_sixteen_maximal_uploads_at_once_are_checked_two_at_a_time(tmp_path: Path, booth_images: Path) -> None:
    config = write_config(tmp_path / "cfg", booth_images)
    limit = f'keys = ["test-key"]\nmax_upload_megapixels = {MEGAPIXELS}'
    config.write_text(config.read_text().replace('keys = ["test-key"]', limit))
    photo = worst_png()
    # With the unit's malloc settings, as a booth runs: glibc's default heap per thread made the
    # peak vary by a third from run to run.
    daemon = DaemonProcess(config, env=unit_environment()).start()
    try:
        daemon.wait_ready()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        with httpx.Client(base_url=api_base(config), timeout=300) as http:
            warm = http.post("/api/upload", data={"section": "front"}, files={"image": ("w.png", photo, "image/png")})
            assert warm.status_code == 200, warm.text
            before = memory_kb(pid, "VmRSS")

            def upload(index: int) -> httpx.Response:
                files = {"image": (f"p{index}.png", photo, "image/png")}
                return http.post("/api/upload", data={"section": "front"}, files=files)

            with ThreadPoolExecutor(CONCURRENT) as pool:
                answers = list(pool.map(upload, range(CONCURRENT)))
        peak = memory_kb(pid, "VmHWM")
    finally:
        daemon.stop()
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    for refused in (a for a in answers if a.status_code == 503):
        assert refused.headers["Retry-After"] == "2"
        assert refused.json() == {"error": "Booth busy: 2 uploads are being checked; try again shortly"}
    decode_mb = MEGAPIXELS * 1_000_000 / MB
    grown_mb = (peak - before) / 1024
    print(f"peak grew {grown_mb:.0f} MB over {before / 1024:.0f} MB for {CONCURRENT} uploads of {decode_mb:.0f} MB")
    # Each check holds its body and one byte per pixel decoded: the default two slots bound the sum,
    # however many arrive (unbounded, these 16 took about 250 MB).
    assert grown_mb < (SLOTS + 1) * 2 * decode_mb
