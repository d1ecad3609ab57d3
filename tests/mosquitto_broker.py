"""A real Mosquitto broker for tests: Debian's ``mosquitto`` on a free loopback port.

The broker can be stopped and started again on the SAME port (outage tests). If ``mosquitto`` is
missing the tests fail with the command that installs it; they are never skipped.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.booth_support import free_port

if TYPE_CHECKING:
    from paho.mqtt.client import ConnectFlags
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

INSTALL_HINT = (
    "mosquitto is not installed: the MQTT tests need Debian's broker. "
    "Install it with `sudo apt-get install -y mosquitto mosquitto-clients` (the README set-up does this)."
)


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(INSTALL_HINT)


class MosquittoBroker:
    def __init__(self, port: int | None = None, anonymous: bool = True, listener_conf: str = "") -> None:
        self.binary = mosquitto_binary()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="mosquitto-test-"))
        self.conf = self._dir / "mosquitto.conf"
        self.log = self._dir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{listener_conf}"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        deadline = time.monotonic() + timeout
        while True:
            log = self.log.open("ab")
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
            log.close()
            if self._wait_accepting(deadline):
                return self
            # The port may still be held by the previous instance's socket: try again until the deadline.
            self._kill()
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"mosquitto did not accept connections on {self.port}: {self.log.read_text()}"
                )
            time.sleep(0.2)

    def _wait_accepting(self, deadline: float) -> bool:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the broker process (SIGTERM, then SIGKILL); the port is free for ``start()`` again."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self._kill()
        self.proc = None

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Collector:
    """A paho subscriber that records every message it receives (topic, payload, retain)."""

    def __init__(self, broker: MosquittoBroker, topic: str) -> None:
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

        def on_connect(
            client: mqtt.Client,
            userdata: Any,
            flags: ConnectFlags,
            reason_code: ReasonCode,
            properties: Properties | None,
        ) -> None:
            client.subscribe(topic, qos=1)

        def on_subscribe(
            client: mqtt.Client,
            userdata: Any,
            mid: int,
            reason_codes: list[ReasonCode],
            properties: Properties | None,
        ) -> None:
            self._subscribed.set()

        def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            with self._cond:
                self.messages.append((message.topic, message.payload, bool(message.retain)))
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("test subscriber could not subscribe")

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def on(self, topic: str) -> list[bytes]:
        with self._cond:
            return [payload for t, payload, _ in self.messages if t == topic]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.2))
        return True

    def wait_count(self, topic_prefix: str, count: int, timeout: float = 15.0) -> list[tuple[str, bytes]]:
        def matching() -> list[tuple[str, bytes]]:
            return [(t, p) for t, p, _ in self.messages if t.startswith(topic_prefix)]

        self.wait_for(lambda: len(matching()) >= count, timeout)
        with self._cond:
            return matching()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def booth_result(
    session_id: str, imei: str = "490154203237518", booth_id: str = "booth-1", grade: str = "B"
) -> dict:
    """A result dict that ``edge.contract.BoothProcessResponse`` accepts, as the grader stores it."""
    sections = ("front", "back")
    return {
        "success": True,
        "message": "Session created successfully",
        "sessionId": session_id,
        "imei": imei,
        "analysis": {
            s: {"score": 80, "issues": ["light scratch"], "recommendations": ["clean"], "status": "graded"}
            for s in sections
        },
        "images": [
            {
                "url": f"http://booth.local:8080/images/{imei}/{s}/1700000000000_{s}-1.jpg",
                "section": s,
                "path": f"{imei}/{s}/1700000000000_{s}-1.jpg",
                "size": 1234,
            }
            for s in sections
        ],
        "status": "graded",
        "grade": grade,
        "model": {"name": "grader", "version": "1", "sha256": "0" * 64, "runtime": "ai_edge_litert"},
        "timings_ms": {"capture": 10.0, "grade": 20.0},
        "booth_id": booth_id,
        "time": "2024-01-01T00:00:00+00:00",
    }
