"""The MQTT component in a separate process that is SIGKILLed: last will, and undelivered results
surviving the kill (through the whole daemon: test_daemon_mqtt.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mosquitto_broker import Collector, MosquittoBroker

ROOT = Path(__file__).resolve().parent.parent
BOOTH = "booth-1"
PREFIX = f"vision-grader/{BOOTH}"

CHILD = r"""
import sys, time
from pathlib import Path
from tests.mosquitto_broker import booth_result
from edge.config.mqtt import MqttConfig
import threading
from edge.events import EventBus
from edge.publish import MqttResults, MqttService, mqtt_channel
from edge.spool.db import Database
from edge.spool.outbox import Outbox
from edge.spool.sessions import SessionStore
from edge.status import StatusBoard

state, port, produce = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
db = Database(state / "spool.db")
config = MqttConfig(host="127.0.0.1", port=port, reconnect_min_s=1, reconnect_max_s=1)
wake = threading.Event()
outbox = Outbox(db, EventBus("booth-1"), [mqtt_channel(config, wake)])
store = SessionStore(db, state / "images", on_finished=[MqttResults(outbox, "booth-1").enqueue_result])
service = MqttService(config, "booth-1", outbox, StatusBoard(on_change=wake.set))
service.start()
for _ in range(produce):
    s = store.create("490154203237518", "test")
    store.finish(s.id, "graded", booth_result(s.id), grade="B")
    print("SESSION", s.id, flush=True)
print("READY", flush=True)
time.sleep(3600)
"""


PENDING = "SELECT COUNT(*) FROM outbox WHERE channel = 'mqtt' AND state = 'pending'"


def spawn(state: Path, port: int, produce: int = 0) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state), str(port), str(produce)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    ids = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("SESSION"):
            ids.append(line.split()[1])
        if line.strip() == "READY":
            return proc, ids
    raise AssertionError(f"child exited early with {proc.wait()}")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    b = MosquittoBroker().start()
    yield b
    b.close()


def test_sigkill_leaves_offline_on_available(broker: MosquittoBroker, tmp_path: Path) -> None:
    sub = Collector(broker, f"{PREFIX}/available")
    proc, _ = spawn(tmp_path, broker.port)
    try:
        assert sub.wait_for(lambda: sub.on(f"{PREFIX}/available")[-1:] == [b"online"])
    finally:
        kill(proc)
    assert sub.wait_for(lambda: sub.on(f"{PREFIX}/available")[-1:] == [b"offline"], timeout=10)
    sub.close()
    late = Collector(broker, f"{PREFIX}/available")  # retained: a late subscriber sees it too
    assert late.wait_for(lambda: late.on(f"{PREFIX}/available") == [b"offline"])
    late.close()


def test_results_undelivered_at_sigkill_arrive_after_restart(broker: MosquittoBroker, tmp_path: Path) -> None:
    broker.stop()
    proc, ids = spawn(tmp_path, broker.port, produce=6)
    kill(proc)
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute(PENDING).fetchone()[0] == 6

    broker.start()
    sub = Collector(broker, f"{PREFIX}/sessions/#")
    proc, _ = spawn(tmp_path, broker.port)
    try:
        messages = sub.wait_count(f"{PREFIX}/sessions/", 6, timeout=20)
        assert [t.rsplit("/", 1)[1] for t, _ in messages] == ids
        assert [json.loads(p)["sessionId"] for _, p in messages] == ids
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with sqlite3.connect(tmp_path / "spool.db") as conn:
                left = conn.execute(PENDING).fetchone()[0]
            if left == 0:
                break
            time.sleep(0.1)
        assert left == 0
    finally:
        kill(proc)
        sub.close()
