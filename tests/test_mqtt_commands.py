"""cmd/trigger over a real Mosquitto: answers echo request_id; bad input gets a clear error."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).parent))
from mosquitto_broker import Collector, MosquittoBroker

from edge.config.mqtt import MqttConfig
from edge.events import EventBus
from edge.imei import validate_imei
from edge.publish import MqttService
from edge.spool.db import Database
from edge.spool.sessions import SessionStore

BOOTH = "booth-7"
PREFIX = f"vision-grader/{BOOTH}"
IMEI = "490154203237518"


class BusyError(RuntimeError):
    pass


@pytest.fixture
def setup(tmp_path):
    broker = MosquittoBroker().start()
    db = Database(tmp_path / "spool.db")
    store = SessionStore(db, tmp_path / "images")
    busy = threading.Event()
    calls = []

    def trigger(imei, source, request_id):
        validate_imei(imei)
        if busy.is_set():
            raise BusyError("booth busy: a session is in progress")
        calls.append((imei, source, request_id))
        return store.create(imei, source, request_id)

    config = MqttConfig(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1)
    service = MqttService(config, BOOTH, db, store, EventBus(BOOTH), trigger=trigger)
    service.start()
    assert service.link.wait_connected(10)
    sub = Collector(broker, f"{PREFIX}/cmd/trigger/response")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    # The service subscribes after its CONNACK: a probe answered proves the subscription is in place.
    deadline, probes = time.monotonic() + 20, 0
    while not sub.messages and time.monotonic() < deadline:
        client.publish(f"{PREFIX}/cmd/trigger", b"probe", qos=1).wait_for_publish(5)
        probes += 1
        sub.wait_for(lambda: bool(sub.messages), timeout=1)
    assert sub.messages, "the trigger command topic never answered"
    # Probes sent before the subscription got no answer; wait briefly for any that will.
    sub.wait_for(lambda: len(sub.messages) >= probes, timeout=2)
    with sub._cond:
        sub.messages.clear()
    yield client, sub, busy, calls, store
    client.disconnect()
    client.loop_stop()
    sub.close()
    service.stop()
    db.close()
    broker.close()


def ask(client, sub, body: bytes, count: int) -> dict:
    client.publish(f"{PREFIX}/cmd/trigger", body, qos=1).wait_for_publish(5)
    assert sub.wait_for(lambda: len(sub.messages) >= count), "no answer on cmd/trigger/response"
    return json.loads(sub.messages[count - 1][1])


def test_trigger_starts_a_session_and_echoes_request_id(setup):
    client, sub, _, calls, store = setup
    answer = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "r-1"}).encode(), 1)
    assert answer["request_id"] == "r-1"
    assert answer["success"] is True
    assert store.get(answer["sessionId"]).source == "mqtt"
    assert calls == [(IMEI, "mqtt", "r-1")]


def test_bad_imei_malformed_json_missing_imei_and_busy_get_errors(setup):
    client, sub, busy, calls, _ = setup
    bad = ask(client, sub, json.dumps({"imei": "490154203237519", "request_id": "r-2"}).encode(), 1)
    assert bad["request_id"] == "r-2"
    assert "Luhn" in bad["error"]
    short = ask(client, sub, json.dumps({"imei": "12345", "request_id": 7}).encode(), 2)
    assert short == {"request_id": 7, "error": "Invalid request: imei must be exactly 15 digits"}
    malformed = ask(client, sub, b'{"imei": "4901542', 3)
    assert malformed["request_id"] is None
    assert "malformed JSON" in malformed["error"]
    missing = ask(client, sub, json.dumps({"request_id": "r-4"}).encode(), 4)
    assert missing == {"request_id": "r-4", "error": "Invalid request: imei is required"}
    busy.set()
    refused = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "r-5"}).encode(), 5)
    assert refused == {"request_id": "r-5", "error": "booth busy: a session is in progress"}
    assert calls == []
