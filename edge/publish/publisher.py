"""The MQTT channel of the outbox: results and cloud answers out in order, state and events beside them.

Rows are enqueued by the session store (``MqttResults.enqueue_result``, in the transaction that
stores the result) and by the cloud mirror (``enqueue_cloud``). One worker drains the channel:
at most ``max_inflight`` rows are in paho's hands at once, a row is acknowledged in the outbox only
when its PUBACK arrives, a slot whose PUBACK never comes is released after ``inflight_timeout_s``
(the row is sent again), and a row the broker refuses waits for its retry with the rows behind it.
paho's ``on_publish`` runs with paho's own lock held, so acknowledgements are handed over through
a queue and applied by the worker, which alone owns the map from paho message ids to rows.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from edge.config.mqtt import MqttConfig
from edge.events import Event
from edge.publish.mqtt_link import MqttLink
from edge.publish.topics import Topics, session_suffix
from edge.spool.outbox import Channel, Outbox
from edge.spool.sessions import SessionRecord
from edge.status import StatusBoard
from edge.timefmt import utc_iso
from edge.worker import Worker

logger = logging.getLogger(__name__)

CHANNEL = "mqtt"
TICK_S = 0.5
SCRUBBED_KEYS = frozenset({"imei"})
DEPTH_KEY = "mqtt_outbox_depth"
CONNECTED_KEY = "mqtt_connected"


def mqtt_channel(config: MqttConfig, wake: threading.Event) -> Channel:
    return Channel(
        CHANNEL,
        max_rows=config.outbox_max_rows,
        policy=config.outbox_full_policy,
        backoff_base_s=config.retry_base_s,
        backoff_cap_s=config.retry_cap_s,
        retry_after_max_s=config.retry_cap_s,
        keep_finished_s=config.outbox_keep_delivered_days * 86400,
        ordered=True,
        wake=wake,
    )


def result_payload(record: SessionRecord, booth_id: str) -> dict[str, Any]:
    """The full result as stored (the contract's process answer plus the booth's fields).

    A session that failed before grading has no stored answer; it still gets a message, so that a
    store system waiting for this session id hears how it ended.
    """
    if record.result is not None:
        payload = dict(record.result)
    else:
        payload = {
            "success": False,
            "sessionId": record.id,
            "imei": record.imei,
            "status": record.status,
            "grade": record.grade,
            "reason": record.reason,
            "time": utc_iso(record.updated_at),
        }
    payload.setdefault("sessionId", record.id)
    payload.setdefault("status", record.status)
    payload.setdefault("booth_id", booth_id)
    return payload


def scrub(value: Any) -> Any:
    """Events leave the booth: drop any IMEI a caller put in by mistake."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in SCRUBBED_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


class MqttResults:
    """What goes into the MQTT channel; needs only the outbox, so it exists before anything finishes."""

    def __init__(self, outbox: Outbox, booth_id: str) -> None:
        self.outbox = outbox
        self.booth_id = booth_id

    def enqueue_result(self, conn: sqlite3.Connection, record: SessionRecord) -> None:
        """An ``on_session_finished`` hook: runs inside the transaction that stores the result."""
        payload = result_payload(record, self.booth_id)
        self.outbox.enqueue(conn, CHANNEL, record.id, "result", payload, topic=session_suffix(record.id))

    def enqueue_cloud(self, conn: sqlite3.Connection, session_id: str, payload: dict[str, Any]) -> None:
        """For the cloud mirror: the cloud's answer, in the transaction that stores it."""
        self.outbox.enqueue(conn, CHANNEL, session_id, "cloud", payload, topic=session_suffix(session_id, cloud=True))


class Publisher:
    def __init__(
        self,
        link: MqttLink,
        outbox: Outbox,
        topics: Topics,
        booth_id: str,
        config: MqttConfig,
        status: StatusBoard,
        on_connect: Callable[[MqttLink], None],
    ) -> None:
        self.link = link
        self.outbox = outbox
        self.topics = topics
        self.booth_id = booth_id
        self.config = config
        self.status = status
        self._on_connect = on_connect
        self._acks: queue.SimpleQueue[tuple[int, bool, str]] = queue.SimpleQueue()
        self._inflight: dict[int, tuple[int, float]] = {}  # paho mid -> (outbox row id, sent at)
        self._connects_seen = 0
        self._last_state: tuple[int, int, bool] | None = None
        self._last_state_at = 0.0
        self.events_dropped = 0
        self.worker = Worker(
            "mqtt-outbox", self._step, wake=outbox.channels[CHANNEL].wake, finish=self._apply_acks
        )

    def in_flight(self) -> int:
        """Rows handed to paho and not yet acknowledged."""
        return len(self._inflight)

    def on_ack(self, mid: int, ok: bool, reason: str) -> None:
        """paho's network thread, with paho's lock held: hand over and return."""
        self._acks.put((mid, ok, reason))
        self.worker.wake()

    def on_event(self, event: Event) -> None:
        """EventBus sink: events go out QoS 1 while connected, and are dropped in an outage.

        Queued in paho during an outage they would fill its bounded queue before the reconnect's
        `online` and state, which then could not be sent; results have the outbox, events do not.
        """
        if not self.link.connected:
            self.events_dropped += 1
            return
        payload = json.dumps(scrub(event), separators=(",", ":"), default=str)
        info = self.link.publish(self.topics.events, payload, qos=1)
        if not self.link.accepted(info):
            self.events_dropped += 1

    def _step(self) -> float:
        self._apply_acks()
        self._expire()
        link = self.link
        if not link.connected:
            return TICK_S
        if link.connect_count != self._connects_seen:
            self._connects_seen = link.connect_count
            self._last_state = None
            self._on_connect(link)
        self._pump()
        return self._maybe_publish_state()

    def _apply_acks(self) -> None:
        """Each delivery in its own commit, as its PUBACK arrives: a kill re-sends only rows in flight."""
        while True:
            try:
                mid, ok, reason = self._acks.get_nowait()
            except queue.Empty:
                break
            slot = self._inflight.pop(mid, None)
            if slot is None:
                continue  # state, events, answers: nothing on disk to mark
            if ok:
                self.outbox.ack([slot[0]])
            else:
                wait = self.outbox.retry(slot[0], None, f"broker refused: {reason}")
                logger.warning("mqtt: broker refused outbox row %d (%s); retrying in %.0f s with the rows behind it",
                               slot[0], reason, wait)

    def _expire(self) -> None:
        limit = time.monotonic() - self.config.inflight_timeout_s
        for mid, (row_id, sent) in list(self._inflight.items()):
            if sent < limit:
                del self._inflight[mid]
                logger.warning("mqtt: no PUBACK for outbox row %d within %.0f s; sending it again",
                               row_id, self.config.inflight_timeout_s)

    def _pump(self) -> None:
        room = self.config.max_inflight - len(self._inflight)
        if room <= 0:
            return
        busy = frozenset(row_id for row_id, _ in self._inflight.values())
        for row in self.outbox.claim_due(CHANNEL, room, skip=busy):
            if not self.link.connected:
                break
            info = self.link.publish(self.topics.of(row.topic or ""), row.payload or "", qos=1)
            if not self.link.accepted(info):
                break  # paho's queue is full: try again on the next round
            self._inflight[info.mid] = (row.id, time.monotonic())

    def _maybe_publish_state(self) -> float:
        current = (self.status.version, self.outbox.depth(CHANNEL), self.link.connected)
        if current == self._last_state:
            return TICK_S
        wait = self._last_state_at + self.config.state_min_interval_s - time.monotonic()
        if wait > 0:
            return min(wait, TICK_S)
        self._last_state = current
        self._last_state_at = time.monotonic()
        state = dict(self.status.snapshot())
        state.setdefault("booth_id", self.booth_id)
        state[DEPTH_KEY] = current[1]
        state[CONNECTED_KEY] = current[2]
        state["mqtt_events_dropped"] = self.events_dropped
        state["time"] = utc_iso()
        payload = json.dumps(scrub(state), separators=(",", ":"), default=str)
        self.link.publish(self.topics.state, payload, qos=1, retain=True)
        return TICK_S
