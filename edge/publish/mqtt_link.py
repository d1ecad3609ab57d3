"""One paho-mqtt 2.x client per booth: connect, TLS, will, reconnect with backoff, quiet outages.

The link counts as connected only after a CONNACK whose reason code is a success. It announces
``online`` (retained) on every connect, leaves ``offline`` as its last will, and says ``stopped`` on
a clean stop. While the broker is away it logs one warning, then a reminder every
``outage_reminder_s``, never one line per attempt.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config.mqtt import MqttConfig
from edge.publish.topics import Topics
from edge.worker import Worker

logger = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"
STOPPED = "stopped"

ChangeHook = Callable[[], None]
AckHook = Callable[[int, bool, str], None]
MessageHook = Callable[[mqtt.MQTTMessage], None]


def default_client_id(booth_id: str) -> str:
    return f"edge-grader-{booth_id}"


# A network loop that returns on its own (an error, not a stop) is restarted after this pause.
LOOP_RESTART_S = 1.0
# The largest packet the broker may send the booth (MQTT 5): a command is a few hundred bytes,
# and one up to this size still gets its "too large" answer; a larger one is not delivered, so a
# publisher on the store's network cannot make the booth hold megabytes.
MAX_INCOMING_PACKET = 64 * 1024


def _nothing() -> None:
    return None


class MqttLink:
    """The connection; its owner gives the hooks: ``on_change`` (connected or lost), ``on_ack``, ``on_message``."""

    def __init__(
        self,
        config: MqttConfig,
        booth_id: str,
        topics: Topics,
        *,
        on_change: ChangeHook = _nothing,
        on_ack: AckHook | None = None,
        on_message: MessageHook | None = None,
        subscriptions: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.topics = topics
        self.client_id = config.client_id or default_client_id(booth_id)
        self._clock = clock
        self._connected = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._last_warning = 0.0
        self.connect_count = 0
        # Why the link is not connected, while it is not: the broker's refusal or the connect error.
        self.last_failure: str | None = None
        self._on_change = on_change
        self._on_ack = on_ack
        self._on_message_hook = on_message
        self.subscriptions = tuple(subscriptions)
        self.client = self._make_client()
        # paho's network loop runs on a worker of ours, so the watchdog sees it and stop() ends it.
        self.worker = Worker("mqtt-network", self._loop, interrupt=self.client.disconnect)

    @property
    def v5(self) -> bool:
        return self.config.protocol == "5"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        protocol = mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": self.client_id,
            "protocol": protocol,
        }
        if not self.v5:
            # No broker-side session: stale commands must not pile up while the booth is off.
            kwargs["clean_session"] = True
        client = mqtt.Client(**kwargs)
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password is not None else None
            client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            client.tls_set(
                ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            if cfg.tls.insecure:
                client.tls_insecure_set(True)
        client.will_set(self.topics.available, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.max_inflight_messages_set(cfg.max_inflight)
        client.max_queued_messages_set(cfg.max_queued)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; paho retries with backoff until the broker answers."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self._down_since = self._clock()
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            props.MaximumPacketSize = MAX_INCOMING_PACKET
        self.client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=True if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )
        self.worker.start()

    def _loop(self) -> float:
        try:
            self.client.loop_forever()
        except OSError as exc:
            # Only the first attempt raises (with the cause, say a TLS certificate the CA does not
            # sign); paho retries the later ones itself, in the next round.
            self._note_down(f"cannot connect: {exc}")
        return LOOP_RESTART_S

    def stop(self, timeout: float = 5.0) -> None:
        """Say ``stopped`` (retained) if connected, disconnect cleanly so the will is not sent."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        if self.connected:
            info = self.client.publish(self.topics.available, STOPPED, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                logger.warning("mqtt: could not publish 'stopped' before disconnecting")
        self._connected.clear()
        self.worker.stop(timeout)

    # -- publishing --------------------------------------------------------------------------

    def publish(
        self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False, json_body: bool = True
    ) -> mqtt.MQTTMessageInfo:
        props = None
        if self.v5 and json_body:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = "application/json"
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)

    @staticmethod
    def accepted(info: mqtt.MQTTMessageInfo) -> bool:
        """paho took the message (sent, or held for resending after a reconnect)."""
        return info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)

    def down_for(self) -> float | None:
        return None if self._down_since is None else self._clock() - self._down_since

    # -- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self._connected.clear()
            self._note_down(f"broker refused the connection: {reason_code}")
            self._changed()
            return
        self._connected.set()
        self.last_failure = None
        self.connect_count += 1
        down = self.down_for()
        self._down_since = None
        self._last_warning = 0.0
        if self.connect_count == 1:
            logger.info("mqtt: connected to %s:%d as %s", self.config.host, self.config.port, self.client_id)
        else:
            logger.info("mqtt: connected again after %.0f s", down or 0.0)
        client.publish(self.topics.available, ONLINE, qos=1, retain=True)
        for topic in self.subscriptions:
            if self.v5:
                # As published: a command sent retained while the booth listens keeps its flag, so it
                # is refused like the copy the broker hands over on every connect.
                client.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
            else:
                client.subscribe(topic, qos=1)
        self._changed()

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            logger.exception("mqtt: connection hook failed")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected:
            self._changed()
        if not self._started:
            return
        if was_connected:
            self._down_since = self._clock()
            self._note_down(f"connection lost: {reason_code}")
        else:
            # The close after a refused CONNACK: the refusal is the cause.
            self._note_down(self.last_failure or f"connection lost: {reason_code}")

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho gives no cause here; a cause already known for this outage is kept.
        self._note_down(self.last_failure or "broker unreachable")

    def _note_down(self, reason: str) -> None:
        """One warning per outage, then a reminder every ``outage_reminder_s``; the rest at DEBUG."""
        self.last_failure = reason
        now = self._clock()
        if self._down_since is None:
            self._down_since = now
        target = f"{self.config.host}:{self.config.port}"
        if self._last_warning == 0.0:
            self._last_warning = now
            logger.warning("mqtt: %s (%s); retrying with backoff, results wait in the outbox", reason, target)
        elif now - self._last_warning >= self.config.outage_reminder_s:
            self._last_warning = now
            logger.warning("mqtt: broker %s still away after %.0f s (%s)", target, now - self._down_since, reason)
        else:
            logger.debug("mqtt: %s", reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
    ) -> None:
        # Called with paho's out-message lock held: hand over, never block here.
        if self._on_ack is not None:
            self._on_ack(mid, not reason_code.is_failure, str(reason_code))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._on_message_hook is not None:
            try:
                self._on_message_hook(message)
            except Exception:
                logger.exception("mqtt: message handler failed on %s", message.topic)
