"""The mirror inside the real daemon process: SIGKILL mid-mirror, restart, the mirror completes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cloudsim import CloudSim
from edge.contract import ProcessResponse
from tests.booth_support import VALID_IMEI, DaemonProcess, wait_for, write_config
from tests.cloudsim_support import SIM_KEY
from tests.mosquitto_broker import Collector, MosquittoBroker

TIMEOUT = 120.0


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CloudSim]:
    with CloudSim(tmp_path / "cloud", SIM_KEY) as server:
        yield server


def _rows(state: Path, query: str) -> list[tuple]:
    conn = sqlite3.connect(state / "spool.db")
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_sigkill_mid_mirror_then_restart_completes_the_mirror(
    tmp_path: Path, booth_images: Path, sim: CloudSim
) -> None:
    cloud = (
        f'mode = "mirror"\nbase_url = "{sim.base_url}"\napi_key = "{SIM_KEY}"\n'
        "backoff_base_s = 0.2\nbackoff_cap_s = 1.0\nread_timeout_s = 10\n"
    )
    config = write_config(tmp_path / "cfg", booth_images, shots=2, cloud=cloud)
    state = config.parent / "state"
    # The photos go up, then every process call fails: the daemon is caught between the two steps.
    sim.add_fault(kind="error", status=500, endpoint="process", count=None)
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_ready()
        result = daemon.cli("trigger", "--imei", VALID_IMEI, "--wait")
        assert result.returncode == 0, result.stdout + result.stderr
        originals = _rows(state, "SELECT COUNT(*) FROM images WHERE kind = 'original'")[0][0]
        wait_for(lambda: sim.stats()["requests"].get("process", 0) >= 2, TIMEOUT)
        assert sim.stats()["uploads"] == originals
        daemon.kill()
    finally:
        daemon.stop()
    assert _rows(state, "SELECT state FROM outbox WHERE channel = 'cloud'") == [("pending",)]

    sim.clear_faults()
    restarted = DaemonProcess(config).start()
    try:
        restarted.wait_ready()
        wait_for(lambda: _rows(state, "SELECT cloud_json IS NOT NULL FROM sessions") == [(1,)], TIMEOUT)
    finally:
        restarted.stop()
    stats = sim.stats()
    assert stats["uploads"] == originals  # the upload answers survived the SIGKILL and were reused
    assert stats["sessions_by_imei"] == {VALID_IMEI: 1}
    assert _rows(state, "SELECT state FROM outbox WHERE channel = 'cloud'") == [("done",)]
    assert _rows(state, "PRAGMA integrity_check") == [("ok",)]


def test_cloud_answer_is_published_with_the_score_comparison(
    tmp_path: Path, booth_images: Path, sim: CloudSim
) -> None:
    prefix = "vision-grader/test-booth"
    cloud = f'mode = "mirror"\nbase_url = "{sim.base_url}"\napi_key = "{SIM_KEY}"\n'
    with MosquittoBroker() as broker:
        collector = Collector(broker, f"{prefix}/#")
        mqtt = f'host = "127.0.0.1"\nport = {broker.port}'
        daemon = DaemonProcess(write_config(tmp_path / "cfg", booth_images, mqtt=mqtt, cloud=cloud)).start()
        try:
            daemon.wait_ready()
            result = daemon.cli("trigger", "--imei", VALID_IMEI, "--wait")
            assert result.returncode == 0, result.stdout + result.stderr
            session_id = json.loads(result.stdout)["sessionId"]
            topic = f"{prefix}/sessions/{session_id}/cloud"
            assert collector.wait_for(lambda: collector.on(topic), TIMEOUT), daemon.output()
            payload = json.loads(collector.on(topic)[0])
            answer = ProcessResponse.model_validate(payload)  # the contract's process answer, as the cloud gave it
            assert (answer.success, answer.imei) == (True, VALID_IMEI)
            assert payload["sessionId"] != session_id  # the cloud's own session id
            assert sim.stats()["sessions_by_imei"] == {VALID_IMEI: 1}
            assert set(payload["comparison"]) == {"front", "back"}
            for section, row in payload["comparison"].items():
                assert row["difference"] == payload["analysis"][section]["score"] - row["booth"]

            def mirrored_state() -> bool:
                states = collector.on(f"{prefix}/state")
                cloud_state = json.loads(states[-1]).get("cloud", {}) if states else {}
                return cloud_state.get("reachability") == "reachable" and cloud_state.get("mirrored") == 1

            assert collector.wait_for(mirrored_state, TIMEOUT)
            events = [json.loads(m) for m in collector.on(f"{prefix}/events")]
            assert any(e["type"] == "mirrored" and e["session_id"] == session_id for e in events)
            assert all(VALID_IMEI not in t for t, _, _ in collector.messages)
        finally:
            daemon.stop()
            collector.close()
