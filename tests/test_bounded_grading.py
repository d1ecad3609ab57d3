"""Grading is bounded: one queue for every session, busy answers past it, partial API sessions failed.

The daemon runs as a real child process (`edge-grader run`) with its local API on loopback.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.booth_support import REPO, VALID_IMEI, DaemonProcess, db_rows, free_port, wait_for, write_config

KEY = "test-key"
MAX_SESSIONS = 2
CALLS = 10


def unit_memory_max_bytes() -> int:
    """The systemd unit's MemoryMax=, the limit the booth must stay under."""
    unit = (REPO / "systemd" / "edge-grader.service").read_text()
    value = re.search(r"^MemoryMax=(\d+)([KMG]?)$", unit, re.M)
    assert value is not None
    return int(value[1]) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[value[2]]


def peak_rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.M)
    assert match is not None
    return int(match[1]) * 1024


@pytest.fixture
def booth(tmp_path: Path, booth_images: Path) -> Iterator[tuple[DaemonProcess, str, Path]]:
    port = free_port()
    config = write_config(tmp_path / "cfg", booth_images, api_port=port)
    text = config.read_text().replace('state_dir = "state"', f'state_dir = "state"\nmax_sessions = {MAX_SESSIONS}')
    config.write_text(text)
    daemon = DaemonProcess(config).start()
    daemon.wait_ready()
    yield daemon, f"http://127.0.0.1:{port}", tmp_path / "cfg" / "state"
    daemon.stop()


def upload_pair(http: httpx.Client, images: Path) -> list[dict[str, str]]:
    refs = []
    for section in ("front", "back"):
        data = (images / section / "00.jpg").read_bytes()
        files = {"image": ("00.jpg", data, "image/jpeg")}
        answer = http.post("/api/upload", files=files, data={"section": section, "imei": VALID_IMEI})
        assert answer.status_code == 200, answer.text
        refs.append({"url": answer.json()["url"], "section": section})
    return refs


def test_ten_concurrent_process_calls_grade_within_the_bound_and_lose_nothing(
    booth: tuple[DaemonProcess, str, Path], booth_images: Path
) -> None:
    daemon, base, state = booth
    with httpx.Client(base_url=base, timeout=600) as http:
        refs = upload_pair(http, booth_images)
        body = {"key": KEY, "imei": VALID_IMEI, "images": refs}
        answers: list[httpx.Response] = []
        lock = threading.Lock()
        go = threading.Barrier(CALLS)

        def call() -> None:
            with httpx.Client(base_url=base, timeout=600) as own:
                go.wait()
                response = own.post("/api/process", json=body)
            with lock:
                answers.append(response)

        threads = [threading.Thread(target=call) for _ in range(CALLS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        assert len(answers) == CALLS
        graded = [a for a in answers if a.status_code == 200]
        busy = [a for a in answers if a.status_code == 503]
        assert len(graded) + len(busy) == CALLS, [a.status_code for a in answers]
        assert MAX_SESSIONS <= len(graded) < CALLS  # the first ones in are graded, the rest refused at once
        for answer in busy:
            assert answer.headers["retry-after"] == "5"
            assert answer.json() == {"error": f"Booth is busy: {MAX_SESSIONS} sessions queued or grading"}
        assert {a.json()["status"] for a in graded} == {"graded"}
        # Nothing lost: every accepted call is a stored graded session, a refused one left nothing behind,
        # and its uploads still serve it when it comes back.
        stored = db_rows(state, "SELECT id, status FROM sessions")
        assert sorted(stored) == sorted((a.json()["sessionId"], "graded") for a in graded)
        for _ in busy:
            again = http.post("/api/process", json=body)
            assert again.status_code == 200 and again.json()["status"] == "graded"
        assert len(db_rows(state, "SELECT id FROM sessions WHERE status = 'graded'")) == CALLS
    assert daemon.proc is not None
    assert peak_rss_bytes(daemon.proc.pid) < unit_memory_max_bytes()


def test_sigkill_between_the_links_of_an_api_session_fails_it_after_the_restart(
    booth: tuple[DaemonProcess, str, Path], booth_images: Path
) -> None:
    daemon, base, state = booth
    with httpx.Client(base_url=base, timeout=600) as http:
        refs = upload_pair(http, booth_images) * 32  # 64 photos: the most the contract takes
        body = {"key": KEY, "imei": VALID_IMEI, "images": refs}
        cut: list[type[Exception]] = []

        def call() -> None:
            try:
                httpx.post(f"{base}/api/process", json=body, timeout=600)
            except httpx.TransportError as exc:
                cut.append(type(exc))

        caller = threading.Thread(target=call)
        caller.start()

        def mid_linking() -> bool:
            linked = db_rows(
                state,
                "SELECT COUNT(*) FROM images i JOIN sessions s ON s.id = i.session_id WHERE s.status = 'linking'",
            )
            return 0 < linked[0][0] < len(refs)

        wait_for(mid_linking, timeout=120, interval=0.005)
        daemon.kill(signal.SIGKILL)
        caller.join(60)
    assert cut == [httpx.RemoteProtocolError]  # the caller's connection went with the daemon
    [(session_id, status, linked)] = db_rows(
        state, "SELECT s.id, s.status, (SELECT COUNT(*) FROM images WHERE session_id = s.id) FROM sessions s"
    )
    assert status == "linking" and 0 < linked < len(refs)
    daemon.start()
    daemon.wait_ready()
    query = "SELECT status, reason, result_json FROM sessions WHERE id = ?"
    [(after, reason, result)] = db_rows(state, query, (session_id,))
    assert after == "failed" and result is None
    assert reason == f"interrupted during linking of its uploads by a restart ({linked} images kept)"
