"""Helpers shared by the daemon-level tests: configs on disk, free ports, a running daemon."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VALID_IMEI = "490154203237518"
OTHER_IMEI = "356938035643809"
# The daemon's own line once cameras, model and every part are up (not any line holding "ready").
READY_LINE = re.compile(r" INFO edge\.daemon\.run: booth [A-Za-z0-9_-]+ ready$", re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    folder: Path,
    images: Path,
    *,
    api_port: int = 0,
    extra: str = "",
    shots: int = 1,
    back_shots: int = 1,
    threads: int = 1,
    mqtt: str = "enabled = false",
    cloud: str = 'mode = "off"',
) -> Path:
    """A booth config on replay cameras under ``folder``; ``extra`` is appended TOML."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "booth.toml"
    path.write_text(
        f"""
[booth]
id = "test-booth"
sections = ["front", "back"]
state_dir = "state"

[cameras.cam]
backend = "replay"
folder = "{images}"
timeout_s = 10

[rig.sections.front]
camera = "cam"
shots = {shots}

[rig.sections.back]
camera = "cam"
shots = {back_shots}

[model]
threads = {threads}

[api]
port = {api_port or free_port()}
keys = ["test-key"]
technician_keys = ["open-sesame"]

[mqtt]
{mqtt}

[cloud]
{cloud}
{extra}
"""
    )
    return path


def db_rows(state: Path, query: str, args: tuple = ()) -> list[tuple]:
    """Rows of the booth's spool database, read as any sqlite3 client would."""
    conn = sqlite3.connect(state / "spool.db")
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def render_booth_images(folder: Path) -> Path:
    """Deterministic demo photos (front and back) as the replay cameras' folder."""
    if not (folder / "front").is_dir():
        subprocess.run([sys.executable, "-m", "edge.synth.demo_images", str(folder)], check=True, cwd=REPO)
    return folder


def render_cracked_booth_images(folder: Path, demo: Path) -> Path:
    """A replay folder whose front photo is a rendered crack, its back the demo's."""
    from tests.test_grading_pipeline import cracked_photos

    (folder / "front").mkdir(parents=True, exist_ok=True)
    (folder / "front" / "cracked.jpg").write_bytes(cracked_photos(1)[0])
    if not (folder / "back").exists():
        (folder / "back").symlink_to(demo / "back", target_is_directory=True)
    return folder


# Above any int8 probability: every crack found is weak evidence and the session goes to review.
REVIEW_EVERY_CRACK = "\n[model.thresholds]\ncrack_confirm = 0.9999\n"
# Below any crack the model reports: every crack is settled and the session is graded.
CONFIRM_EVERY_CRACK = "\n[model.thresholds]\ncrack_confirm = 0.01\n"


def api_base(config: Path) -> str:
    """The daemon's local API, from the port its config names."""
    import tomllib

    return f"http://127.0.0.1:{tomllib.loads(config.read_text())['api']['port']}"


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:g} s")


class DaemonProcess:
    """`edge-grader run` as a real child process, with its output kept for diagnosis."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = config.parent / f"daemon-{time.monotonic_ns()}.log"
        self._env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=REPO,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
            return READY_LINE.search(self.output()) is not None

        wait_for(ready, timeout)

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            env=self._env,
        )

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=120)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
