"""The daemon as systemd runs it: notify protocol, CLI triggers, crash recovery, clean stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from edge.config import load_config
from edge.config.root import AppConfig
from edge.daemon.booth import MAX_REGRADES, POLL_S
from edge.daemon.wiring import Daemon, build
from edge.errors import TriggerRefusedError
from edge.spool.db import Database
from edge.spool.sessions import SessionRecord, SessionStore
from edge.statuses import Status
from tests.booth_support import OTHER_IMEI, VALID_IMEI, DaemonProcess, db_rows, wait_for, write_config


def _messages(sock: socket.socket, until: str) -> list[str]:
    seen = []
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if until in message:
            return seen


def test_daemon_is_ready_grades_a_cli_trigger_and_stops_cleanly(
    tmp_path: Path, booth_images: Path, notify_socket: tuple[Path, socket.socket]
) -> None:
    path, sock = notify_socket
    config = write_config(tmp_path / "cfg", booth_images, shots=2)
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}).start()
    try:
        assert any(m.startswith("READY=1") for m in _messages(sock, "READY=1"))
        result = daemon.cli("trigger", "--imei", VALID_IMEI, "--wait")
        assert result.returncode == 0, result.stdout + result.stderr
        answer = json.loads(result.stdout)
        assert answer["status"] == "graded"
        assert "WATCHDOG=1" in _messages(sock, "WATCHDOG=1")
        state = tmp_path / "cfg" / "state"
        images = db_rows(
            state,
            "SELECT section, path, size FROM images WHERE session_id = ? AND kind = 'original' ORDER BY id",
            (answer["sessionId"],),
        )
        assert [row[0] for row in images] == ["front", "front", "back"]
        for _, rel, size in images:
            assert (state / "images" / rel).stat().st_size == size
        assert VALID_IMEI not in daemon.output()  # IMEIs are masked in logs
        assert daemon.kill(signal.SIGTERM) == 0
        assert any(m.startswith("STOPPING=1") for m in _messages(sock, "STOPPING=1"))
    finally:
        daemon.stop()


def test_cli_refuses_a_bad_imei_and_stores_nothing(tmp_path: Path, booth_images: Path) -> None:
    config = write_config(tmp_path / "cfg", booth_images)
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_ready()
        result = daemon.cli("trigger", "--imei", "490154203237519")
        assert result.returncode == 1
        assert "Luhn" in json.loads(result.stdout)["error"]
        assert db_rows(tmp_path / "cfg" / "state", "SELECT COUNT(*) FROM sessions") == [(0,)]
    finally:
        daemon.stop()


def test_sigkill_mid_capture_then_restart_keeps_the_session_and_its_images(tmp_path: Path, booth_images: Path) -> None:
    images = tmp_path / "imgs"
    shutil.copytree(booth_images, images)
    # front has two shots: the second reads a FIFO that nobody writes, so the capture blocks there.
    first = sorted((images / "front").iterdir())[0]
    for extra in sorted((images / "front").iterdir())[1:]:
        extra.unlink()
    os.mkfifo(images / "front" / "zz-blocking.jpg")
    config = write_config(tmp_path / "cfg", images, shots=2)
    config.write_text(config.read_text().replace("timeout_s = 10", "timeout_s = 60"))
    state = tmp_path / "cfg" / "state"
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_ready()
        answer = json.loads(daemon.cli("trigger", "--imei", VALID_IMEI).stdout)
        session_id = answer["sessionId"]
        wait_for(lambda: db_rows(state, "SELECT COUNT(*) FROM images WHERE session_id = ?", (session_id,)) == [(1,)])
        assert daemon.kill(signal.SIGKILL) == -signal.SIGKILL
    finally:
        daemon.stop()
    assert first.exists()
    (images / "front" / "zz-blocking.jpg").unlink()
    restarted = DaemonProcess(config).start()
    try:
        restarted.wait_ready()
        assert db_rows(state, "PRAGMA integrity_check") == [("ok",)]
        status, reason = db_rows(state, "SELECT status, reason FROM sessions WHERE id = ?", (session_id,))[0]
        assert status == "failed"
        assert "interrupted during capture" in reason and "1 images kept" in reason
        rel = db_rows(state, "SELECT path FROM images WHERE session_id = ?", (session_id,))[0][0]
        assert (state / "images" / rel).is_file()
        # The booth goes on: the next trigger works.
        after = restarted.cli("trigger", "--imei", OTHER_IMEI, "--wait")
        assert after.returncode == 0, after.stdout + after.stderr
    finally:
        restarted.stop()


def _left_by_a_crash(tmp_path: Path, booth_images: Path, status: Status) -> tuple[Path, Path, SessionRecord]:
    """A booth's config, its state folder, and a session a crash left in ``status`` with a photo
    of each section stored."""
    config_path = write_config(tmp_path / "cfg", booth_images)
    state = load_config(config_path).booth.state_dir
    db = Database(state / "spool.db")
    store = SessionStore(db, state / "images")
    session = store.create(VALID_IMEI, "cli", status=status)
    for section in ("front", "back"):
        store.add_image(session, section, 0, sorted((booth_images / section).iterdir())[0].read_bytes())
    db.close()
    return config_path, state, session


def test_session_captured_before_a_crash_is_graded_on_start(tmp_path: Path, booth_images: Path) -> None:
    config_path, state, session = _left_by_a_crash(tmp_path, booth_images, "captured")
    daemon = DaemonProcess(config_path).start()
    try:
        daemon.wait_ready()
        wait_for(
            lambda: (
                db_rows(state, "SELECT status FROM sessions WHERE id = ?", (session.id,))[0][0] == "graded"
            )
        )
        result = json.loads(db_rows(state, "SELECT result_json FROM sessions WHERE id = ?", (session.id,))[0][0])
        assert set(result["analysis"]) == {"front", "back"}
    finally:
        daemon.stop()


def test_a_session_found_unfinished_at_every_start_is_failed_on_the_third_not_regraded_forever(
    tmp_path: Path, booth_images: Path
) -> None:
    # Each start below recovers the session and then dies before grading it, as a daemon does
    # whose grading of that session runs out of memory or stalls until the watchdog ends it.
    config_path, state, session = _left_by_a_crash(tmp_path, booth_images, "grading")
    # An upload's session queued behind it was never graded: no start counts against it.
    db = Database(state / "spool.db")
    queued = SessionStore(db, state / "images").create(OTHER_IMEI, "api", status="captured")
    db.close()
    statuses = []
    for _ in range(MAX_REGRADES + 1):
        daemon = build(load_config(config_path))
        try:
            daemon.booth.recover()
            record, behind = daemon.booth.store.get(session.id), daemon.booth.store.get(queued.id)
            assert record is not None and behind is not None
            statuses.append((record.status, behind.status, behind.recoveries))
        finally:
            daemon.close()
    assert statuses == [("grading", "captured", 0)] * MAX_REGRADES + [("failed", "captured", 0)]
    assert record.reason == "grading was cut short by a restart 3 times, so it is not tried again (2 images kept)"
    assert record.recoveries == MAX_REGRADES + 1
    # The photos stay for a person to look at.
    assert db_rows(state, "SELECT COUNT(*) FROM images WHERE session_id = ?", (session.id,)) == [(2,)]


def _listening_booth(tmp_path: Path, booth_images: Path) -> tuple[AppConfig, Daemon, list[dict]]:
    """A booth built (not started) on replay cameras, and the list its events go to."""
    config = load_config(write_config(tmp_path / "cfg", booth_images))
    daemon = build(config)
    events: list[dict] = []
    daemon.booth.events.subscribe(events.append)
    return config, daemon, events


def test_booth_refuses_triggers_it_cannot_honour(tmp_path: Path, booth_images: Path) -> None:
    config, daemon, events = _listening_booth(tmp_path, booth_images)
    booth = daemon.booth
    try:
        with pytest.raises(TriggerRefusedError) as info:
            booth.trigger_armed("gpio-button")
        assert info.value.code == "no_imei"
        with pytest.raises(TriggerRefusedError) as info:
            booth.trigger("12345", "api")
        assert info.value.code == "invalid_imei"
        config.storage.min_free_mb = 10**12
        with pytest.raises(TriggerRefusedError) as info:
            booth.trigger(VALID_IMEI, "api")
        assert info.value.code == "disk_low"
        assert [e["type"] for e in events] == ["trigger_rejected", "trigger_rejected", "disk_low"]
        assert booth.store.list() == []
    finally:
        daemon.close()


def test_a_disk_turning_low_is_told_while_idle_before_a_trigger_meets_it(tmp_path: Path, booth_images: Path) -> None:
    config, daemon, events = _listening_booth(tmp_path, booth_images)
    booth = daemon.booth
    booth.start()
    try:
        wait_for(lambda: daemon.status.snapshot()["activity"] == "idle")
        time.sleep(2 * POLL_S)  # idle ticks with a fine disk: nothing to tell
        quiet = daemon.status.version
        config.storage.min_free_mb = 10**12
        wait_for(lambda: any(e["type"] == "disk_low" for e in events))
        assert [(e["type"], e["source"]) for e in events] == [("disk_low", "watch")]
        assert daemon.status.snapshot()["disk_problem"].startswith("disk low: ")
        assert daemon.status.version == quiet + 1  # the MQTT state is published again
        time.sleep(2 * POLL_S)  # still low: told once
        config.storage.min_free_mb = 0
        wait_for(lambda: daemon.status.version == quiet + 2)
        assert daemon.status.snapshot()["disk_problem"] is None
        assert len(events) == 1
    finally:
        booth.stop()
        daemon.close()


def test_a_failed_disk_write_leaves_no_imei_in_the_whole_log(tmp_path: Path, booth_images: Path) -> None:
    config = write_config(tmp_path / "cfg", booth_images)
    state = tmp_path / "cfg" / "state"
    # The front photo's folder cannot be made: a file stands where it goes (root ignores permissions).
    (state / "images" / VALID_IMEI).mkdir(parents=True)
    (state / "images" / VALID_IMEI / "front").write_bytes(b"in the way")
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_ready()
        result = daemon.cli("trigger", "--imei", VALID_IMEI, "--wait")
        answer = json.loads(result.stdout)
        assert answer["status"] == "failed"
        assert answer["reason"] == "capture failed: photo could not be stored: File exists"
    finally:
        daemon.stop()
    log = daemon.output()
    assert "session " in log and "capture failed" in log
    assert VALID_IMEI not in log
