"""A full disk is a normal event: the session fails with its reason, the booth lives and says why.

The booth's state lives on a real small file system (tmpfs), filled to the last byte at the
moment under test, as another process on the Pi would fill it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from edge.config import load_config
from edge.daemon.wiring import Daemon, build
from edge.spool.retention import MB
from tests.booth_support import VALID_IMEI, api_base, wait_for, write_config

DISK_MB = 48
STORAGE = "\n[storage]\nmin_free_mb = 16\nemergency_free_mb = 20\nreserve_mb = 4\n"
CHUNK = 256 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); the booth's quota is tested elsewhere")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder: Path) -> Path:
    """Write one file until the file system has not a byte left."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (CHUNK, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    assert shutil.disk_usage(folder).free == 0
    return filler


def start(config_path: Path) -> Daemon:
    daemon = build(load_config(config_path))
    daemon.start()
    return daemon


def session(http: httpx.Client, session_id: str) -> dict[str, Any]:
    return http.get(f"/api/sessions/{session_id}").json()


def trigger(http: httpx.Client) -> httpx.Response:
    return http.post("/api/sessions", json={"imei": VALID_IMEI, "key": "test-key"})


class FillsDiskOnGrade:
    """The booth's real grader, with the disk filled the moment grading starts."""

    def __init__(self, grader: Any, filling: Callable[[], Path]) -> None:
        self._grader = grader
        self._filling = filling
        self.info = grader.info

    def grade(self, *args: Any, **kwargs: Any) -> Any:
        self._filling()
        return self._grader.grade(*args, **kwargs)


@pytest.mark.parametrize("phase", ["capture", "grading"])
def test_a_disk_filled_mid_session_fails_it_and_the_booth_refuses_until_space_returns(
    small_disk: Path, booth_images: Path, phase: str
) -> None:
    folder = small_disk / "cfg"
    config_path = write_config(folder, booth_images, extra=STORAGE)
    filler: list[Path] = []
    daemon = start(config_path)
    try:
        first = True

        def fill_once() -> Path:
            nonlocal first
            if first:
                first = False
                filler.append(fill(small_disk))
            return filler[0]

        if phase == "capture":
            daemon.events.subscribe(lambda event: event["type"] == "session_started" and fill_once())
        else:
            daemon.booth.grading.grader = FillsDiskOnGrade(daemon.booth.grading.grader, fill_once)  # type: ignore[assignment]
        with httpx.Client(base_url=api_base(config_path), timeout=60) as http:
            started = trigger(http)
            assert started.status_code == 202
            sid = started.json()["sessionId"]
            failed = wait_for(lambda: (s := session(http, sid))["status"] == "failed" and s, timeout=120)
            assert failed["reason"] == "disk full: the session could not be stored"
            assert daemon.down() == []
            health = http.get("/healthz").json()
            assert health["status"] == "degraded"
            assert health["problems"][0].startswith("disk low: ")
            refused = trigger(http)
            assert refused.status_code == 507
            assert refused.json()["error"].startswith("Booth disk low: ")

            filler[0].unlink()
            assert http.get("/healthz").json()["status"] == "ok"
            again = trigger(http)
            assert again.status_code == 202, again.text
            wait_for(lambda: session(http, again.json()["sessionId"])["status"] == "graded", timeout=120)
            wait_for(lambda: (folder / "state" / "disk.reserve").exists(), timeout=60)
    finally:
        daemon.stop()
        daemon.close()


def test_a_restart_into_a_full_disk_comes_up_and_refuses_sessions(small_disk: Path, booth_images: Path) -> None:
    folder = small_disk / "cfg"
    config_path = write_config(folder, booth_images, extra=STORAGE)
    daemon = start(config_path)
    daemon.stop()
    daemon.close()
    fill(small_disk)
    daemon = start(config_path)
    try:
        assert daemon.down() == []
        with httpx.Client(base_url=api_base(config_path), timeout=60) as http:
            assert http.get("/healthz").json()["status"] == "degraded"
            refused = trigger(http)
            assert refused.status_code == 507
            assert set(refused.json()) == {"error"}
    finally:
        daemon.stop()
        daemon.close()


def noise_png(seed: int) -> bytes:
    """About 2 MB that no PNG encoder can shrink."""
    pixels = np.random.default_rng(seed).integers(0, 256, (700, 1000, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def test_uploads_stop_at_emergency_free_mb_with_a_507_never_a_500(small_disk: Path, booth_images: Path) -> None:
    folder = small_disk / "cfg"
    config_path = write_config(folder, booth_images, extra=STORAGE)
    daemon = start(config_path)
    try:
        photo = noise_png(0)
        answers = []
        with httpx.Client(base_url=api_base(config_path), timeout=60) as http:
            while not answers or answers[-1].status_code == 200:
                assert len(answers) < DISK_MB
                answers.append(
                    http.post("/api/upload", data={"section": "front"}, files={"image": ("p.png", photo, "image/png")})
                )
        assert len(answers) > 1
        refused = answers[-1]
        assert refused.status_code == 507
        assert refused.json() == {"error": refused.json()["error"]}
        assert refused.json()["error"].startswith("Not enough disk for the upload: booth disk low: ")
        # Uploads stop above the emergency (20 MB here): they never make the booth delete photos.
        assert shutil.disk_usage(small_disk).free / MB >= 20
    finally:
        daemon.stop()
        daemon.close()


def test_in_a_disk_emergency_uploads_no_session_took_go_before_any_session_photo(
    tmp_path: Path, booth_images: Path
) -> None:
    config = load_config(write_config(tmp_path / "cfg", booth_images, extra=STORAGE.replace("= 20", "= 40")))
    daemon = build(config)
    root = daemon.booth.store.images_root
    # The disk of a 100 MB card holding the booth's files.
    daemon.booth.retention.free_mb = lambda: 100 - sum(  # type: ignore[method-assign]
        f.stat().st_size for f in root.rglob("*") if f.is_file()
    ) / MB
    try:
        review = daemon.booth.store.create(VALID_IMEI, "test")
        daemon.booth.store.add_image(review, "front", 0, b"\xff\xd8" + b"x" * (15 * MB))
        daemon.booth.store.finish(review.id, "review", {}, provisional_grade="D")
        first = daemon.uploads.save(b"\xff\xd8" + b"u" * (30 * MB), "front", None, "a.jpg")
        assert daemon.booth.retention.sweep() == 0  # 55 MB free: above the emergency's 40
        second = daemon.uploads.save(b"\xff\xd8" + b"v" * (20 * MB), "back", None, "b.jpg")
        # Uploaded ten minutes ago; one sent a moment ago may be what an /api/process is linking.
        daemon.booth.store.db.connection().execute("UPDATE uploads SET created_at = created_at - 600")
        fresh = daemon.uploads.save(b"\xff\xd8" + b"w" * MB, "back", None, "c.jpg")
        daemon.booth.retention.sweep()  # 34 MB free: the older uploads go, the review's photo stays
        assert [(root / u.path).exists() for u in (first, second, fresh)] == [False, False, True]
        assert [daemon.uploads.by_path(u.path).expired_at is not None for u in (first, second)] == [True, True]
        assert [(root / i.path).stat().st_size for i in daemon.booth.store.images(review.id)] == [15 * MB + 2]
    finally:
        daemon.close()
