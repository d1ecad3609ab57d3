"""``<prefix>/cmd/trigger`` and ``<prefix>/cmd/arm`` in, ``.../response`` out.

A request is ``{"imei": "<15 digits>", "request_id": "<anything short>"}``. ``cmd/trigger`` starts a
session and answers its ``sessionId``; ``cmd/arm`` sets the IMEI the next GPIO button or drawer
trigger grades and answers ``armed: true``. The answer echoes ``request_id``, or carries
``{"error": "<text>", "code"}`` for a malformed body or unknown field (``invalid_request``), a
retained command (``retained``: it would run again on every reconnect, so it never runs; over MQTT
3.1.1 the broker clears the flag of one sent while the booth listens, and that one copy runs), a bad
IMEI, a busy booth or any other refusal. An empty message (clearing a retained one) is not answered.
Requests are handled one at a time on a worker, never on paho's network thread; a full queue is
answered at once with code ``busy``.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import MQTTMessage

from edge.publish.mqtt_link import MqttLink
from edge.publish.topics import Topics
from edge.spool.sessions import SessionRecord
from edge.worker import Worker

logger = logging.getLogger(__name__)

MAX_BODY = 4096
MAX_REQUEST_ID = 128
QUEUE_SIZE = 8
FIELDS = frozenset({"imei", "request_id"})
POLL_S = 1.0

# Booth.trigger(imei, source=..., request_id=...) and Booth.arm(imei): check the IMEI by the booth's
# rule and raise TriggerRefusedError (with a code) when they refuse: invalid IMEI, busy, disk low, stopping.
TriggerFn = Callable[..., SessionRecord]
ArmFn = Callable[[str], None]


class CommandRejected(ValueError):
    """A command refused before it reaches the booth; ``code`` goes in the answer."""

    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.code = code


class CommandHandler:
    def __init__(self, link: MqttLink, topics: Topics, trigger: TriggerFn, arm: ArmFn) -> None:
        self.link = link
        self.topics = topics
        self.trigger = trigger
        self.arm = arm
        self._queue: queue.Queue[tuple[str, Any, str, Any]] = queue.Queue(QUEUE_SIZE)
        self.worker = Worker("mqtt-commands", self._step)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return (self.topics.cmd_trigger, self.topics.cmd_arm)

    def on_message(self, message: MQTTMessage) -> None:
        """paho network thread: parse, then queue the command or answer at once."""
        if message.topic not in self.subscriptions:
            return
        if not message.payload:
            # How a retained message is cleared: nobody asked anything, so nothing is answered.
            logger.debug("mqtt: empty message on %s ignored", message.topic)
            return
        topic = message.topic
        correlation = getattr(message.properties, "CorrelationData", None) if message.properties else None
        request_id, imei_or_error = self.parse(message.payload)
        if message.retain and not isinstance(imei_or_error, Exception):
            imei_or_error = CommandRejected(
                "Invalid request: retained commands are ignored; publish them without retain", "retained"
            )
        if isinstance(imei_or_error, CommandRejected):
            self.answer(topic, request_id, correlation, {"error": str(imei_or_error), "code": imei_or_error.code})
            return
        try:
            self._queue.put_nowait((topic, request_id, imei_or_error, correlation))
            self.worker.wake()
        except queue.Full:
            busy = {"error": "booth busy: too many requests pending", "code": "busy"}
            self.answer(topic, request_id, correlation, busy)

    def parse(self, body: bytes) -> tuple[Any, Any]:
        """(request_id, imei as sent) or (request_id, the error to answer); the booth checks the IMEI."""
        if len(body) > MAX_BODY:
            return None, CommandRejected(f"Invalid request: body larger than {MAX_BODY} bytes")
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, CommandRejected(f"Invalid request: malformed JSON ({exc.__class__.__name__})")
        except RecursionError:
            return None, CommandRejected("Invalid request: JSON nested too deep")
        if not isinstance(data, dict):
            return None, CommandRejected('Invalid request: expected a JSON object {"imei", "request_id"}')
        request_id = data.get("request_id")
        if request_id is not None and not isinstance(request_id, str | int):
            return None, CommandRejected("Invalid request: request_id must be a string or an integer")
        if isinstance(request_id, str) and len(request_id) > MAX_REQUEST_ID:
            return None, CommandRejected(f"Invalid request: request_id longer than {MAX_REQUEST_ID} characters")
        unknown = sorted(set(data) - FIELDS)
        if unknown:
            shown = ", ".join(unknown)[:MAX_REQUEST_ID]
            return request_id, CommandRejected(f"Invalid request: {shown} is not a known field")
        if "imei" not in data:
            return request_id, CommandRejected("Invalid request: imei is required")
        return request_id, data["imei"]

    def _step(self) -> float:
        try:
            topic, request_id, imei, correlation = self._queue.get_nowait()
        except queue.Empty:
            return POLL_S
        try:
            if topic == self.topics.cmd_arm:
                self.arm(imei)
                body: dict[str, Any] = {"success": True, "armed": True}
            else:
                session = self.trigger(imei, source="mqtt", request_id=None if request_id is None else str(request_id))
                body = {"success": True, "sessionId": session.id}
        except Exception as exc:
            logger.info("mqtt: %s request %r refused: %s", topic.rsplit("/", 1)[-1], request_id, exc)
            body = {"error": str(exc) or exc.__class__.__name__}
            code = getattr(exc, "code", None)
            if code is not None:
                body["code"] = code
        self.answer(topic, request_id, correlation, body)
        return 0.0

    def answer(self, topic: str, request_id: Any, correlation: bytes | None, body: dict[str, Any]) -> None:
        body = {"request_id": request_id, **body}
        props = None
        if self.link.v5 and correlation is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = correlation
        self.link.client.publish(f"{topic}/response", json.dumps(body), qos=1, retain=False, properties=props)
