"""The control socket behind `edge-grader trigger|arm|status`, over a real Unix socket to the real booth."""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge.config.load import load_config
from edge.daemon.booth import Booth
from edge.daemon.wiring import build
from edge.trigger.control import ControlSocket
from tests.api_support import API_KEY, live_api
from tests.booth_support import VALID_IMEI, write_config


@pytest.fixture
def control(tmp_path: Path) -> Iterator[tuple[Booth, Path]]:
    # The session worker is never started: a trigger stores its session and leaves it queued.
    daemon = build(load_config(write_config(tmp_path / "booth", tmp_path / "replay")))
    booth = daemon.booth
    # A short folder: a Unix socket path is limited to about 100 bytes, pytest's are long.
    with tempfile.TemporaryDirectory(prefix="eg-") as short:
        path = Path(short) / "control.sock"
        server = ControlSocket(booth, path)
        server.start()
        yield booth, path
        server.stop()
    daemon.close()


def ask(path: Path, request: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(sock.makefile().readline())


def test_a_bad_wait_is_refused_before_any_session_starts(control: tuple[Booth, Path]) -> None:
    booth, path = control
    answer = ask(path, {"cmd": "trigger", "imei": VALID_IMEI, "wait": True, "timeout_s": "soon"})
    assert answer == {"error": "Invalid request: timeout_s must be a number of seconds"}
    assert booth.store.list() == []


def test_trigger_starts_a_session_and_a_bad_imei_gets_the_booths_refusal(control: tuple[Booth, Path]) -> None:
    booth, path = control
    started = ask(path, {"cmd": "trigger", "imei": VALID_IMEI, "request_id": "k-1"})
    assert started["status"] == "capturing"
    assert booth.store.get(started["sessionId"]).source == "cli"
    refused = ask(path, {"cmd": "trigger", "imei": "490154203237519"})
    assert refused["code"] == "invalid_imei" and "Luhn" in refused["error"]
    assert ask(path, {"cmd": "dance"}) == {
        "error": "Invalid request: unknown command 'dance' (trigger, arm, status)"
    }  # fmt: skip


def test_the_local_api_arms_the_next_gpio_trigger(tmp_path: Path) -> None:
    daemon = build(load_config(write_config(tmp_path / "booth", tmp_path / "replay")))
    try:
        with live_api(daemon) as base:
            refused = httpx.post(f"{base}/api/arm", json={"imei": VALID_IMEI, "key": "nope"}, timeout=30)
            assert refused.status_code == 401
            armed = httpx.post(f"{base}/api/arm", json={"imei": VALID_IMEI, "key": API_KEY}, timeout=30)
            assert armed.status_code == 200
            assert armed.json() == {"success": True, "armed_for_s": 300.0}
        session = daemon.booth.trigger_armed("gpio-drawer")
        assert (session.imei, session.source) == (VALID_IMEI, "gpio-drawer")
    finally:
        daemon.close()
