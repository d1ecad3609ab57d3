"""``MqttService``: the MQTT part of the daemon (link, outbox channel worker, commands).

The daemon builds it with what it needs: the outbox (whose ``mqtt`` channel it drains), the status
board (whose snapshot is the ``state`` topic) and the trigger of the session queue (for
``cmd/trigger``). What it puts into the outbox is enqueued by ``MqttResults``, which the session
store and the cloud mirror are given.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

from paho.mqtt.client import MQTTMessage

from edge.config.mqtt import MqttConfig
from edge.publish.commands import ArmFn, CommandHandler, TriggerFn
from edge.publish.discovery import publish_discovery
from edge.publish.mqtt_link import MqttLink
from edge.publish.publisher import CHANNEL, Publisher
from edge.publish.topics import Topics
from edge.spool.outbox import Outbox
from edge.status import StatusBoard
from edge.worker import Worker

logger = logging.getLogger(__name__)


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
        outbox: Outbox,
        status: StatusBoard,
        trigger: TriggerFn | None = None,
        arm: ArmFn | None = None,
    ) -> None:
        """Without ``trigger`` and ``arm`` (or with commands_enabled off) no command is taken."""
        self.config = config
        self.booth_id = booth_id
        self.outbox = outbox
        self.topics = Topics.for_booth(config.topic_prefix, booth_id)
        commands_on = trigger is not None and arm is not None and config.commands_enabled
        self.link = MqttLink(
            config,
            booth_id,
            self.topics,
            on_change=self._on_change,
            on_ack=self._on_ack,
            on_message=self._on_message,
            subscriptions=(self.topics.cmd_trigger, self.topics.cmd_arm) if commands_on else (),
        )
        self.publisher = Publisher(self.link, outbox, self.topics, booth_id, config, status, self._on_connect)
        self.commands = (
            CommandHandler(self.link, self.topics, trigger, arm) if commands_on and trigger and arm else None
        )

    @property
    def workers(self) -> list[Worker]:
        """In start order."""
        workers = [self.publisher.worker]
        if self.commands is not None:
            workers.append(self.commands.worker)
        return [*workers, self.link.worker]

    def start(self) -> None:
        if self.commands is not None:
            self.commands.worker.start()
        self.publisher.worker.start()
        self.link.start()
        logger.info(
            "mqtt: publishing under %s/ to %s:%d (%d result(s) waiting in the outbox)",
            self.topics.prefix,
            self.config.host,
            self.config.port,
            self.depth(),
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Record what was acknowledged, say ``stopped``, disconnect. Undelivered rows stay on disk."""
        if self.commands is not None:
            self.commands.worker.stop(timeout)
        self.publisher.worker.stop(timeout)
        self.link.stop(timeout)

    def on_event(self, event: dict[str, Any]) -> None:
        self.publisher.on_event(event)

    @property
    def connected(self) -> bool:
        return self.link.connected

    def depth(self) -> int:
        return self.outbox.depth(CHANNEL)

    # -- the link's hooks (paho's network thread) -----------------------------------------------

    def _on_change(self) -> None:
        self.publisher.worker.wake()

    def _on_ack(self, mid: int, ok: bool, reason: str) -> None:
        self.publisher.on_ack(mid, ok, reason)

    def _on_message(self, message: MQTTMessage) -> None:
        if self.commands is not None:
            self.commands.on_message(message)

    # -- on the publisher's thread, once per connection -----------------------------------------

    def _on_connect(self, link: MqttLink) -> None:
        if self.config.ha_discovery:
            publish_discovery(link, self.topics, self.booth_id, self.config.ha_discovery_prefix, _version())
