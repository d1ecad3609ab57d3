"""Typed booth events, fanned out in-process (MQTT `events` topic, metrics, logs)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from edge.timefmt import utc_iso

logger = logging.getLogger(__name__)

EventType = Literal[
    "session_started",
    "capture_failed",
    "retake",
    "graded",
    "review",
    "reviewed",
    "failed",
    "mirrored",
    "dead_lettered",
    "disk_low",
    "trigger_rejected",
    "outbox_full",
    "retention_emergency",
]

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, booth_id: str) -> None:
        self.booth_id = booth_id
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def emit(self, type_: EventType, **fields: Any) -> Event:
        """Never pass an IMEI here: events leave the booth."""
        event: Event = {"type": type_, "booth_id": self.booth_id, "time": utc_iso(), **fields}
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber failed on %s", type_)
        return event
