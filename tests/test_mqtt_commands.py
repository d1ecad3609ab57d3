"""cmd/trigger over a real Mosquitto to the real booth: answers echo request_id; bad input gets a clear error."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config.load import load_config
from edge.config.mqtt import MqttConfig
from edge.daemon.wiring import build
from edge.publish import MqttService
from tests.booth_support import write_config
from tests.mosquitto_broker import Collector, MosquittoBroker

BOOTH = "booth-7"
PREFIX = f"vision-grader/{BOOTH}"
IMEI = "490154203237518"


@pytest.fixture
def setup(tmp_path):
    broker = MosquittoBroker().start()
    # The booth's session worker is never started: a trigger stores and queues its session and
    # leaves the booth busy, so the next one is refused by the booth's own rule.
    daemon = build(load_config(write_config(tmp_path / "booth", tmp_path / "replay")))
    booth = daemon.booth
    config = MqttConfig(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1)
    service = MqttService(config, BOOTH, daemon.outbox, daemon.status, trigger=booth.trigger, arm=booth.arm)
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
    sub.clear()
    yield client, sub, booth, broker
    client.disconnect()
    client.loop_stop()
    sub.close()
    service.stop()
    daemon.close()
    broker.close()


def ask(client, sub, body: bytes, count: int) -> dict:
    client.publish(f"{PREFIX}/cmd/trigger", body, qos=1).wait_for_publish(5)
    assert sub.wait_for(lambda: len(sub.messages) >= count), "no answer on cmd/trigger/response"
    return json.loads(sub.messages[count - 1][1])


def test_trigger_starts_a_session_and_echoes_request_id(setup):
    client, sub, booth, _broker = setup
    answer = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "r-1"}).encode(), 1)
    assert answer["request_id"] == "r-1"
    assert answer["success"] is True
    session = booth.store.get(answer["sessionId"])
    assert (session.source, session.request_id, session.imei) == ("mqtt", "r-1", IMEI)


def test_bad_imei_malformed_json_missing_imei_and_busy_get_errors(setup):
    client, sub, booth, _broker = setup
    bad = ask(client, sub, json.dumps({"imei": "490154203237519", "request_id": "r-2"}).encode(), 1)
    assert bad["request_id"] == "r-2" and bad["code"] == "invalid_imei"
    assert "Luhn" in bad["error"]
    short = ask(client, sub, json.dumps({"imei": "12345", "request_id": 7}).encode(), 2)
    assert short == {
        "request_id": 7, "error": "Invalid request: imei must be exactly 15 digits", "code": "invalid_imei"
    }  # fmt: skip
    malformed = ask(client, sub, b'{"imei": "4901542', 3)
    assert malformed["request_id"] is None
    assert "malformed JSON" in malformed["error"]
    missing = ask(client, sub, json.dumps({"request_id": "r-4"}).encode(), 4)
    assert missing == {"request_id": "r-4", "error": "Invalid request: imei is required"}
    assert booth.store.list() == []
    started = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "r-5"}).encode(), 5)
    assert started["success"] is True
    refused = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "r-6"}).encode(), 6)
    assert refused == {"request_id": "r-6", "error": "Booth is busy with another session", "code": "busy"}
    assert [s.id for s in booth.store.list()] == [started["sessionId"]]



def test_arm_sets_the_imei_the_next_gpio_trigger_grades(setup):
    client, _sub, booth, broker = setup
    answers = Collector(broker, f"{PREFIX}/cmd/arm/response")
    try:
        deadline = time.monotonic() + 20
        request = json.dumps({"imei": IMEI, "request_id": "a-1"})
        while not answers.messages and time.monotonic() < deadline:  # arming twice is harmless
            client.publish(f"{PREFIX}/cmd/arm", request, qos=1).wait_for_publish(5)
            answers.wait_for(lambda: bool(answers.messages), timeout=1)
        assert json.loads(answers.messages[0][1]) == {"request_id": "a-1", "success": True, "armed": True}
    finally:
        answers.close()
    session = booth.trigger_armed("gpio-button")
    assert (session.imei, session.source) == (IMEI, "gpio-button")
