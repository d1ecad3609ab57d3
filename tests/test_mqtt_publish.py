"""MQTT against a real Mosquitto: results, cloud answers, events, state, outages, restarts."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config.mqtt import MqttConfig
from edge.contract import BoothProcessResponse
from edge.events import EventBus
from edge.publish import MqttResults, MqttService, mqtt_channel
from edge.spool.db import Database
from edge.spool.outbox import Outbox
from edge.spool.sessions import SessionStore
from edge.status import StatusBoard
from tests.clock_support import SteppedClock
from tests.mosquitto_broker import Collector, MosquittoBroker, booth_result

BOOTH = "booth-1"
PREFIX = f"vision-grader/{BOOTH}"
IMEI = "490154203237518"


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    b = MosquittoBroker()
    b.start()
    yield b
    b.close()


@pytest.fixture
def collector_factory() -> Iterator[Callable[..., Collector]]:
    made: list[Collector] = []

    def make(broker: MosquittoBroker, topic: str = f"{PREFIX}/#") -> Collector:
        c = Collector(broker, topic)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


class Booth:
    """The parts a daemon gives the MQTT service, wired as the daemon wires them: a real SQLite spool
    with the outbox, events, status."""

    def __init__(self, tmp: Path, port: int, clock: Callable[[], float] = time.time, **mqtt: Any) -> None:
        self.db = Database(tmp / "spool.db")
        self.config = MqttConfig(
            host="127.0.0.1",
            port=port,
            reconnect_min_s=1,
            reconnect_max_s=1,
            state_min_interval_s=0.1,
            **mqtt,
        )
        wake = threading.Event()
        self.events = EventBus(BOOTH)
        self.status = StatusBoard(on_change=wake.set)
        self.status.set("state", "idle")
        self.outbox = Outbox(self.db, self.events, [mqtt_channel(self.config, wake)], clock=clock)
        self.results = MqttResults(self.outbox, BOOTH)
        self.store = SessionStore(self.db, tmp / "images", on_finished=[self.results.enqueue_result])
        self.mqtt = MqttService(self.config, BOOTH, self.outbox, self.status)
        self.events.subscribe(self.mqtt.on_event)

    def finish(self, grade: str = "B") -> str:
        session = self.store.create(IMEI, "test")
        self.store.finish(session.id, "graded", booth_result(session.id, grade=grade), grade=grade)
        return session.id

    def close(self) -> None:
        self.mqtt.stop()
        self.db.close()


@pytest.fixture
def booths(tmp_path: Path) -> Iterator[Callable[..., Booth]]:
    made: list[Booth] = []

    def make(port: int, clock: Callable[[], float] = time.time, **mqtt: Any) -> Booth:
        b = Booth(tmp_path, port, clock, **mqtt)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def wait(predicate: Callable[[], object], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_results_arrive_on_session_topics_with_the_full_result(
    broker: MosquittoBroker, booths: Callable[..., Booth], collector_factory: Callable[..., Collector]
) -> None:
    sub = collector_factory(broker)
    booth = booths(broker.port)
    booth.mqtt.start()
    assert booth.mqtt.link.wait_connected(10)
    ids = [booth.finish(grade) for grade in "ABC"]

    messages = sub.wait_count(f"{PREFIX}/sessions/", 3)
    assert [t for t, _ in messages] == [f"{PREFIX}/sessions/{i}" for i in ids]
    for (_, payload), session_id, grade in zip(messages, ids, "ABC", strict=True):
        answer = BoothProcessResponse.model_validate_json(payload)
        assert answer.sessionId == session_id
        assert answer.grade == grade
        assert answer.booth_id == BOOTH
        assert answer.images[0].url.startswith("http://")
    assert wait(lambda: booth.mqtt.depth() == 0)
    # No IMEI in any topic name.
    assert all(IMEI not in t for t, _, _ in sub.messages)
    assert sub.on(f"{PREFIX}/available")[-1] == b"online"


def test_cloud_answer_events_and_failed_sessions(
    broker: MosquittoBroker, booths: Callable[..., Booth], collector_factory: Callable[..., Collector]
) -> None:
    sub = collector_factory(broker)
    booth = booths(broker.port)
    booth.mqtt.start()
    assert booth.mqtt.link.wait_connected(10)
    session_id = booth.finish()
    cloud = {"success": True, "sessionId": "cloud-uuid", "imei": IMEI, "analysis": {}, "images": []}
    with booth.db.transaction() as conn:
        booth.store.set_cloud(session_id, cloud, conn)
        booth.results.enqueue_cloud(conn, session_id, cloud)
    failed = booth.store.create(IMEI, "test")
    booth.store.finish(failed.id, "failed", None, reason="camera front: corrupt frame")
    booth.events.emit("graded", session_id=session_id, grade="B", imei=IMEI)

    assert sub.wait_for(lambda: sub.on(f"{PREFIX}/sessions/{session_id}/cloud"))
    assert json.loads(sub.on(f"{PREFIX}/sessions/{session_id}/cloud")[0]) == cloud
    assert sub.wait_for(lambda: sub.on(f"{PREFIX}/sessions/{failed.id}"))
    failed_msg = json.loads(sub.on(f"{PREFIX}/sessions/{failed.id}")[0])
    assert failed_msg["status"] == "failed"
    assert failed_msg["reason"] == "camera front: corrupt frame"
    assert failed_msg["booth_id"] == BOOTH
    assert sub.wait_for(lambda: sub.on(f"{PREFIX}/events"))
    event = json.loads(sub.on(f"{PREFIX}/events")[0])
    assert event["type"] == "graded"
    assert event["session_id"] == session_id
    assert "imei" not in event and IMEI not in sub.on(f"{PREFIX}/events")[0].decode()


def test_results_queued_before_the_clock_is_set_back_an_hour_arrive_at_once_in_order(
    broker: MosquittoBroker, booths: Callable[..., Booth], collector_factory: Callable[..., Collector]
) -> None:
    # A Pi has no clock of its own: NTP (or a person) may set it back after results were queued.
    clock = SteppedClock()
    booth = booths(broker.port, clock=clock)
    ids = [booth.finish(grade) for grade in "AB"]
    clock.step(-3600)
    ids.append(booth.finish("C"))
    sub = collector_factory(broker)
    booth.mqtt.start()

    messages = sub.wait_count(f"{PREFIX}/sessions/", 3)
    assert [t for t, _ in messages] == [f"{PREFIX}/sessions/{i}" for i in ids]
    assert wait(lambda: booth.mqtt.depth() == 0)


def test_broker_outage_20_sessions_arrive_in_order_none_lost(
    broker: MosquittoBroker,
    booths: Callable[..., Booth],
    collector_factory: Callable[..., Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    booth = booths(broker.port, max_inflight=5, max_queued=10, outage_reminder_s=3600)
    booth.mqtt.start()
    assert booth.mqtt.link.wait_connected(10)
    broker.stop()
    assert wait(lambda: not booth.mqtt.connected)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="edge.publish"):
        ids = [booth.finish() for _ in range(20)]
        booth.events.emit("session_started", session_id="x")
        time.sleep(3)  # several reconnect attempts with the broker away
        assert booth.mqtt.depth() == 20
        # At most max_inflight results are in paho's hands whatever happens; the rest wait on disk.
        assert booth.mqtt.publisher.in_flight() <= 5
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("edge.")]
        assert len(warnings) <= 1, [r.getMessage() for r in warnings]

        broker.start()
        sub = collector_factory(broker)
        messages = sub.wait_count(f"{PREFIX}/sessions/", 20, timeout=30)
    got = [t.rsplit("/", 1)[1] for t, _ in messages]
    assert got[:20] == ids
    assert set(got) == set(ids)
    assert wait(lambda: booth.mqtt.depth() == 0)
    def drained() -> bool:
        states = sub.on(f"{PREFIX}/state")
        return bool(states) and json.loads(states[-1])["mqtt_outbox_depth"] == 0

    assert sub.wait_for(drained)


def test_restart_with_undelivered_results_delivers_them_after_the_restart(
    broker: MosquittoBroker, booths: Callable[..., Booth], collector_factory: Callable[..., Collector]
) -> None:
    broker.stop()
    first = booths(broker.port)
    first.mqtt.start()
    ids = [first.finish() for _ in range(5)]
    first.close()
    broker.start()
    sub = collector_factory(broker)
    second = booths(broker.port)
    assert second.mqtt.depth() == 5
    second.mqtt.start()
    messages = sub.wait_count(f"{PREFIX}/sessions/", 5)
    assert [t.rsplit("/", 1)[1] for t, _ in messages] == ids
    assert wait(lambda: second.mqtt.depth() == 0)


def test_state_is_retained_and_republished_on_reconnect(
    broker: MosquittoBroker, booths: Callable[..., Booth], collector_factory: Callable[..., Collector]
) -> None:
    booth = booths(broker.port)
    booth.mqtt.start()
    assert booth.mqtt.link.wait_connected(10)
    early = collector_factory(broker)
    booth.status.set("state", "capturing")
    assert early.wait_for(lambda: any(json.loads(p)["state"] == "capturing" for p in early.on(f"{PREFIX}/state")))
    late = collector_factory(broker)  # subscribes after the fact: sees the retained state
    assert late.wait_for(lambda: any(json.loads(p).get("state") == "capturing" for p in late.on(f"{PREFIX}/state")))
    retained = [json.loads(p) for t, p, r in late.messages if t == f"{PREFIX}/state" and r]
    assert retained and retained[0]["state"] == "capturing"

    broker.stop()  # persistence off: the broker forgets every retained message
    assert wait(lambda: not booth.mqtt.connected)
    broker.start()
    assert wait(lambda: booth.mqtt.connected, 20)
    again = collector_factory(broker)
    assert again.wait_for(lambda: again.on(f"{PREFIX}/state") and again.on(f"{PREFIX}/available"))
    state = json.loads(again.on(f"{PREFIX}/state")[-1])
    assert state["state"] == "capturing"
    assert state["mqtt_outbox_depth"] == 0
    assert again.on(f"{PREFIX}/available")[-1] == b"online"


def test_clean_stop_says_stopped(
    broker: MosquittoBroker, booths: Callable[..., Booth], collector_factory: Callable[..., Collector]
) -> None:
    booth = booths(broker.port)
    booth.mqtt.start()
    assert booth.mqtt.link.wait_connected(10)
    booth.mqtt.stop()
    sub = collector_factory(broker)
    assert sub.wait_for(lambda: sub.on(f"{PREFIX}/available"))
    assert sub.on(f"{PREFIX}/available")[-1] == b"stopped"


@pytest.mark.parametrize("policy", ["drop-oldest", "drop-newest"])
def test_outbox_bound_policy_and_outbox_full_event(
    broker: MosquittoBroker, booths: Callable[..., Booth], policy: str
) -> None:
    broker.stop()
    booth = booths(broker.port, outbox_max_rows=3, outbox_full_policy=policy)
    heard = []
    booth.events.subscribe(heard.append)
    booth.mqtt.start()
    ids = [booth.finish() for _ in range(5)]
    assert booth.mqtt.depth() == 3
    kept = [row.session_id for row in booth.outbox.claim_due("mqtt", 10)]
    assert kept == (ids[2:] if policy == "drop-oldest" else ids[:3])
    # Every session is still stored whatever the outbox dropped.
    assert all(booth.store.get(i).status == "graded" for i in ids)
    assert wait(lambda: len([e for e in heard if e["type"] == "outbox_full"]) == 2)
    event = next(e for e in heard if e["type"] == "outbox_full")
    assert event["policy"] == policy
    assert event["limit"] == 3
    assert event["outbox"] == "mqtt"
    assert event["dropped_session_ids"] == [ids[0] if policy == "drop-oldest" else ids[3]]


def test_home_assistant_discovery_when_enabled(
    broker: MosquittoBroker, booths: Callable[..., Booth], collector_factory: Callable[..., Collector]
) -> None:
    booth = booths(broker.port, ha_discovery=True)
    live = collector_factory(broker, "homeassistant/#")
    booth.mqtt.start()
    assert len(live.wait_count("homeassistant/sensor/", 3)) == 3  # the broker has them
    sub = collector_factory(broker, "homeassistant/#")  # late subscriber: configs are retained
    assert len(sub.wait_count("homeassistant/sensor/", 3)) == 3
    configs = {t: json.loads(p) for t, p, retained in sub.messages if retained}
    assert {t.split("/")[-2] for t in configs} == {"last_grade", "state", "outbox_depth"}
    for config in configs.values():
        assert config["state_topic"] == f"{PREFIX}/state"
        assert config["availability"][0]["topic"] == f"{PREFIX}/available"


def test_an_inflight_slot_whose_puback_never_comes_is_freed_and_the_result_sent_again(
    broker: MosquittoBroker,
    booths: Callable[..., Booth],
    collector_factory: Callable[..., Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sub = collector_factory(broker)
    booth = booths(broker.port, inflight_timeout_s=1.0)
    booth.mqtt.start()
    assert booth.mqtt.link.wait_connected(10)
    broker.proc.send_signal(signal.SIGSTOP)  # the connection stays up, the broker answers nothing
    try:
        with caplog.at_level(logging.WARNING, logger="edge.publish"):
            session_id = booth.finish()
            assert wait(lambda: any("no PUBACK for outbox row" in r.getMessage() for r in caplog.records), 30)
            assert booth.outbox.depth("mqtt") == 1  # still waiting on disk, never marked delivered
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    assert wait(lambda: booth.mqtt.depth() == 0, 30)
    copies = sub.wait_count(f"{PREFIX}/sessions/{session_id}", 2, timeout=30)
    assert len(copies) >= 2  # at-least-once: the first send and the one after its slot expired


def test_a_backlog_flush_holds_at_most_one_result_whose_delivery_is_unrecorded(
    broker: MosquittoBroker, booths: Callable[..., Booth]
) -> None:
    """A kill at any moment of a flush re-sends at most one result: the one whose PUBACK is unrecorded."""
    booth = booths(broker.port)
    booth.mqtt.start()
    assert booth.mqtt.link.wait_connected(10)
    broker.proc.send_signal(signal.SIGSTOP)  # the broker takes the results but answers no PUBACK
    try:
        for _ in range(15):
            booth.finish()
        publisher = booth.mqtt.publisher
        assert wait(lambda: publisher.in_flight() >= 1, timeout=60)
        publisher.worker.stop()  # joined: whatever that round of the flush handed over is counted
        assert publisher.in_flight() == 1
        assert booth.mqtt.depth() == 15
    finally:
        broker.proc.send_signal(signal.SIGCONT)
