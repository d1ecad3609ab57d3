"""Results, state and events out of the booth: one worker thread drains the outbox in order.

paho's ``on_publish`` runs with paho's own lock held, so acknowledgements are handed over through
a queue and applied by the worker, which also owns the map from paho message ids to outbox rows.
At most ``max_inflight`` results are in paho's hands at once; the rest wait on disk.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from typing import Any

from edge.events import Event, EventBus
from edge.publish.mqtt_link import MqttLink
from edge.publish.outbox import Outbox, Overflow
from edge.publish.topics import Topics, session_suffix
from edge.spool.sessions import SessionRecord
from edge.timefmt import utc_iso

logger = logging.getLogger(__name__)

TICK_S = 0.5
RETRY_FAILED_AFTER_S = 30.0
SCRUBBED_KEYS = frozenset({"imei"})


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


class Publisher:
    def __init__(
        self,
        link: MqttLink,
        outbox: Outbox,
        topics: Topics,
        booth_id: str,
        events: EventBus | None,
        state_snapshot: Any,
        state_min_interval_s: float,
    ) -> None:
        self.link = link
        self.outbox = outbox
        self.topics = topics
        self.booth_id = booth_id
        self.events = events
        self._snapshot = state_snapshot
        self._state_min_interval = state_min_interval_s
        self._acks: queue.SimpleQueue[tuple[int, bool, str]] = queue.SimpleQueue()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._inflight_rows: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self._overflows: deque[Overflow] = deque(maxlen=100)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._state_dirty = True
        self._last_state = 0.0
        self._thread: threading.Thread | None = None
        self.events_dropped = 0
        link.on_ack = self._on_ack
        link.on_connected.append(self._on_connected)

    # -- producers ---------------------------------------------------------------------------

    def enqueue_result(self, conn: sqlite3.Connection, record: SessionRecord) -> None:
        """SessionStore result hook: runs inside the transaction that stores the result."""
        overflow = self.outbox.enqueue(
            conn, record.id, "result", session_suffix(record.id), result_payload(record, self.booth_id)
        )
        self.outbox.db.after_commit(lambda: self._after_enqueue(overflow))

    def publish_cloud_result(self, conn: sqlite3.Connection, session_id: str, payload: dict[str, Any]) -> None:
        """For the cloud mirror: queue the cloud's answer in the caller's transaction."""
        overflow = self.outbox.enqueue(conn, session_id, "cloud", session_suffix(session_id, cloud=True), payload)
        self.outbox.db.after_commit(lambda: self._after_enqueue(overflow))

    def _after_enqueue(self, overflow: Overflow | None) -> None:
        if overflow is not None:
            self._overflows.append(overflow)
        self.state_changed()

    def wake(self) -> None:
        """Something was committed: look at the outbox now rather than at the next tick."""
        self._wake.set()

    def state_changed(self) -> None:
        self._state_dirty = True
        self._wake.set()

    def on_event(self, event: Event) -> None:
        """EventBus subscriber: events go out QoS 1 while connected, and are dropped in an outage.

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

    # -- worker ------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _on_connected(self) -> None:
        self._state_dirty = True
        self._last_state = 0.0
        self._wake.set()

    def _on_ack(self, mid: int, ok: bool, reason: str) -> None:
        self._acks.put((mid, ok, reason))
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:
                logger.exception("mqtt: outbox worker step failed")
                self._stop.wait(1.0)
            self._wake.wait(TICK_S)
            self._wake.clear()
        try:
            self._apply_acks()
        except Exception:
            logger.exception("mqtt: could not record the last acknowledgements")

    def _step(self) -> None:
        self._apply_acks()
        self._report_overflows()
        if self.link.connected:
            self._pump()
            now = time.monotonic()
            if self._state_dirty and now - self._last_state >= self._state_min_interval:
                self.publish_state()

    def _apply_acks(self) -> None:
        delivered: list[int] = []
        while True:
            try:
                mid, ok, reason = self._acks.get_nowait()
            except queue.Empty:
                break
            row_id = self._inflight.pop(mid, None)
            if row_id is None:
                continue  # state, events, answers: nothing on disk to mark
            self._inflight_rows.discard(row_id)
            if ok:
                delivered.append(row_id)
            else:
                self._retry_at[row_id] = time.monotonic() + RETRY_FAILED_AFTER_S
                logger.warning("mqtt: broker refused outbox row %d (%s); retrying later", row_id, reason)
        if delivered:
            self.outbox.mark_delivered(delivered)
            self.state_changed()

    def _pump(self) -> None:
        room = self.link.config.max_inflight - len(self._inflight)
        if room <= 0:
            return
        now = time.monotonic()
        rows = self.outbox.pending(room + len(self._inflight_rows) + len(self._retry_at))
        for row in rows:
            if room <= 0 or not self.link.connected:
                break
            if row.id in self._inflight_rows or self._retry_at.get(row.id, 0.0) > now:
                continue
            self._retry_at.pop(row.id, None)
            info = self.link.publish(self.topics.of(row.topic), row.payload, qos=1)
            if not self.link.accepted(info):
                break  # paho's queue is full: try again on the next tick
            self._inflight[info.mid] = row.id
            self._inflight_rows.add(row.id)
            room -= 1

    def publish_state(self) -> None:
        self._state_dirty = False
        self._last_state = time.monotonic()
        state = dict(self._snapshot())
        state.setdefault("booth_id", self.booth_id)
        state["time"] = utc_iso()
        payload = json.dumps(scrub(state), separators=(",", ":"), default=str)
        self.link.publish(self.topics.state, payload, qos=1, retain=True)

    def _report_overflows(self) -> None:
        while self._overflows:
            overflow = self._overflows.popleft()
            logger.warning(
                "mqtt: outbox full (%d undelivered); policy %s dropped %d result(s)",
                overflow.limit,
                overflow.policy,
                len(overflow.dropped_session_ids),
            )
            if self.events is not None:
                self.events.emit(
                    "outbox_full",
                    outbox="mqtt",
                    limit=overflow.limit,
                    policy=overflow.policy,
                    dropped_session_ids=list(overflow.dropped_session_ids),
                )
