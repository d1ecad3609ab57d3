"""``MqttService``: the MQTT component the daemon starts and stops.

Construct it before the first session can finish (it registers the outbox hook on the
SessionStore), ``start()`` it once the booth is up, ``stop()`` it on shutdown.
"""

from __future__ import annotations

import logging
import sqlite3
from importlib import metadata
from typing import Any

from edge.config.mqtt import MqttConfig
from edge.events import EventBus
from edge.publish.commands import CommandHandler, TriggerFn
from edge.publish.discovery import publish_discovery
from edge.publish.mqtt_link import MqttLink
from edge.publish.outbox import Outbox
from edge.publish.publisher import Publisher
from edge.publish.topics import Topics
from edge.spool.db import Database
from edge.spool.sessions import SessionRecord, SessionStore

logger = logging.getLogger(__name__)

DEPTH_KEY = "mqtt_outbox_depth"
CONNECTED_KEY = "mqtt_connected"


def _version() -> str:
    try:
        return metadata.version("edge-grader")
    except metadata.PackageNotFoundError:
        return "dev"


class MqttService:
    def __init__(
        self,
        config: MqttConfig,
        booth_id: str,
        db: Database,
        store: SessionStore | None = None,
        events: EventBus | None = None,
        status: Any = None,
        trigger: TriggerFn | None = None,
    ) -> None:
        self.config = config
        self.booth_id = booth_id
        self.topics = Topics.for_booth(config.topic_prefix, booth_id)
        self.outbox = Outbox(db, config.outbox_max_rows, config.outbox_full_policy)
        self.status = status
        self.link = MqttLink(config, booth_id, self.topics)
        self.publisher = Publisher(
            self.link,
            self.outbox,
            self.topics,
            booth_id,
            events,
            self._state,
            config.state_min_interval_s,
        )
        self.commands = (
            CommandHandler(self.link, self.topics, trigger)
            if trigger is not None and config.commands_enabled
            else None
        )
        if config.ha_discovery:
            self.link.on_connected.append(
                lambda: publish_discovery(self.link, self.topics, booth_id, config.ha_discovery_prefix, _version())
            )
        if store is not None:
            store.add_result_hook(self.publisher.enqueue_result)
            store.add_listener(self._on_finished)
        if events is not None:
            events.subscribe(self.publisher.on_event)
        if status is not None:
            status.set(CONNECTED_KEY, False)
            self.link.on_connected.append(lambda: status.set(CONNECTED_KEY, True))
            self.link.on_disconnected.append(lambda: status.set(CONNECTED_KEY, False))
            status.probe(DEPTH_KEY, self.outbox.depth)
            status.on_change(self.publisher.state_changed)

    @classmethod
    def for_booth(cls, booth: Any) -> MqttService:
        """For ``edge.daemon.booth.Booth``: results, events, state and triggers of that booth.

        Retention keeps the images of sessions whose result is still in the MQTT outbox.
        """
        service = cls(
            booth.config.mqtt,
            booth.config.booth.id,
            booth.db,
            store=booth.store,
            events=booth.events,
            status=booth.status,
            trigger=booth.trigger,
        )
        booth.retention.add_guard(service.outbox.pending_session_ids)
        keep_s = booth.config.mqtt.outbox_keep_delivered_days * 86400
        booth.retention.add_sweeper(lambda now: service.outbox.prune_delivered(now - keep_s))
        return service

    def start(self) -> None:
        if self.commands is not None:
            self.commands.start()
        self.publisher.start()
        self.link.start()
        logger.info(
            "mqtt: publishing under %s/ to %s:%d (%d result(s) waiting in the outbox)",
            self.topics.prefix,
            self.config.host,
            self.config.port,
            self.outbox.depth(),
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Record what was acknowledged, say ``stopped``, disconnect. Undelivered rows stay on disk."""
        if self.commands is not None:
            self.commands.stop(timeout)
        self.publisher.stop(timeout)
        self.link.stop(timeout)

    def publish_cloud_result(self, conn: sqlite3.Connection, session_id: str, payload: dict[str, Any]) -> None:
        """The cloud mirror calls this inside the transaction that stores the cloud's answer."""
        self.publisher.publish_cloud_result(conn, session_id, payload)

    def wake(self) -> None:
        self.publisher.wake()

    @property
    def connected(self) -> bool:
        return self.link.connected

    def depth(self) -> int:
        return self.outbox.depth()

    def _state(self) -> dict[str, Any]:
        # With a status board, its probe and hooks already hold the depth and the connection.
        if self.status is None:
            state = {DEPTH_KEY: self.outbox.depth(), CONNECTED_KEY: self.link.connected}
        else:
            state = self.status.snapshot()
        state["mqtt_events_dropped"] = self.publisher.events_dropped
        return state

    def _on_finished(self, record: SessionRecord) -> None:
        self.publisher.wake()
        if self.status is not None and record.grade is not None:
            self.status.set("last_grade", record.grade)
