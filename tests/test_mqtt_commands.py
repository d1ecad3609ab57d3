"""cmd/trigger over a real Mosquitto to the real booth: answers echo request_id; bad input gets a clear error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config.load import load_config
from edge.config.mqtt import MqttConfig
from edge.daemon.booth import Booth
from edge.daemon.wiring import build
from edge.publish import MqttService
from tests.booth_support import OTHER_IMEI, write_config
from tests.mosquitto_broker import Collector, MosquittoBroker

BOOTH = "booth-7"
PREFIX = f"vision-grader/{BOOTH}"
IMEI = "490154203237518"

Setup = tuple[mqtt.Client, Collector, Booth, MosquittoBroker]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
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


def ask(client: mqtt.Client, sub: Collector, body: bytes, count: int) -> dict:
    client.publish(f"{PREFIX}/cmd/trigger", body, qos=1).wait_for_publish(5)
    assert sub.wait_for(lambda: len(sub.messages) >= count), "no answer on cmd/trigger/response"
    return json.loads(sub.messages[count - 1][1])


def test_trigger_starts_a_session_and_echoes_request_id(setup: Setup) -> None:
    client, sub, booth, _broker = setup
    answer = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "r-1"}).encode(), 1)
    assert answer["request_id"] == "r-1"
    assert answer["success"] is True
    session = booth.store.get(answer["sessionId"])
    assert (session.source, session.request_id, session.imei) == ("mqtt", "r-1", IMEI)


def test_bad_imei_malformed_json_missing_imei_and_busy_get_errors(setup: Setup) -> None:
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
    assert "malformed JSON" in malformed["error"] and malformed["code"] == "invalid_request"
    missing = ask(client, sub, json.dumps({"request_id": "r-4"}).encode(), 4)
    assert missing == {"request_id": "r-4", "error": "Invalid request: imei is required", "code": "invalid_request"}
    assert booth.store.list() == []
    started = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "r-5"}).encode(), 5)
    assert started["success"] is True
    refused = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "r-6"}).encode(), 6)
    assert refused == {"request_id": "r-6", "error": "Booth is busy with another session", "code": "busy"}
    assert [s.id for s in booth.store.list()] == [started["sessionId"]]



def test_unknown_fields_and_deep_json_are_refused_with_a_code(setup: Setup) -> None:
    client, sub, booth, _broker = setup
    unknown = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "u-1", "key": "x"}).encode(), 1)
    assert unknown == {
        "request_id": "u-1", "error": "Invalid request: key is not a known field", "code": "invalid_request"
    }  # fmt: skip
    deep = b"[" * 2000 + b"]" * 2000
    assert len(deep) < 4096
    nested = ask(client, sub, deep, 2)
    assert nested == {"request_id": None, "error": "Invalid request: JSON nested too deep", "code": "invalid_request"}
    assert booth.store.list() == []


def test_a_command_of_megabytes_never_reaches_the_booth_and_the_next_is_answered(setup: Setup) -> None:
    client, sub, _booth, _broker = setup
    client.publish(f"{PREFIX}/cmd/trigger", b"x" * (2 * 1024 * 1024), qos=1).wait_for_publish(10)
    small = ask(client, sub, b"x" * 5000, 1)
    too_large = "Invalid request: body larger than 4096 bytes"
    assert small == {"request_id": None, "error": too_large, "code": "invalid_request"}
    answer = ask(client, sub, json.dumps({"imei": IMEI, "request_id": "after"}).encode(), 2)
    # In order on one topic from one client: had the 2 MB command reached the booth, it would have
    # had the first answer.
    assert answer["request_id"] == "after" and answer["success"] is True
    assert len(sub.messages) == 2


def test_one_request_id_starts_one_session_over_mqtt_and_http(setup: Setup) -> None:
    client, sub, booth, _broker = setup
    request = json.dumps({"imei": IMEI, "request_id": "same-1"}).encode()
    first = ask(client, sub, request, 1)
    again = ask(client, sub, request, 2)
    assert again == first == {"request_id": "same-1", "success": True, "sessionId": first["sessionId"]}
    assert booth.trigger(IMEI, source="http", request_id="same-1").id == first["sessionId"]
    assert [s.id for s in booth.store.list()] == [first["sessionId"]]
    # The same request_id for another phone gets no answer about the first customer's session.
    other = ask(client, sub, json.dumps({"imei": OTHER_IMEI, "request_id": "same-1"}).encode(), 3)
    assert other == {
        "request_id": "same-1",
        "error": "Conflict: request_id 'same-1' was already used for another phone",
        "code": "request_conflict",
    }
    assert [s.id for s in booth.store.list()] == [first["sessionId"]]


def test_a_retained_trigger_is_answered_with_a_code_and_never_starts_a_session(tmp_path: Path) -> None:
    broker = MosquittoBroker().start()
    daemon = build(load_config(write_config(tmp_path / "booth", tmp_path / "replay")))
    sub = Collector(broker, f"{PREFIX}/cmd/trigger/response")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    request = json.dumps({"imei": IMEI, "request_id": "kept"})
    client.publish(f"{PREFIX}/cmd/trigger", request, qos=1, retain=True).wait_for_publish(5)
    config = MqttConfig(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1)
    try:
        for connects in (1, 2):  # the broker hands the retained message over on every (re)connect
            service = MqttService(
                config, BOOTH, daemon.outbox, daemon.status, trigger=daemon.booth.trigger, arm=daemon.booth.arm
            )
            service.start()
            try:
                assert sub.wait_for(lambda n=connects: len(sub.messages) >= n), "no answer to the retained trigger"
            finally:
                service.stop()
            assert json.loads(sub.messages[connects - 1][1]) == {
                "request_id": "kept",
                "error": "Invalid request: retained commands are ignored; publish them without retain",
                "code": "retained",
            }
        assert daemon.booth.store.list() == []
    finally:
        client.publish(f"{PREFIX}/cmd/trigger", b"", qos=1, retain=True).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        sub.close()
        daemon.close()
        broker.close()


def test_a_trigger_sent_retained_while_the_booth_listens_is_refused_and_clearing_it_draws_no_answer(
    setup: Setup,
) -> None:
    client, sub, booth, _broker = setup
    try:
        request = json.dumps({"imei": IMEI, "request_id": "live"})
        client.publish(f"{PREFIX}/cmd/trigger", request, qos=1, retain=True).wait_for_publish(5)
        assert sub.wait_for(lambda: len(sub.messages) >= 1), "no answer to the retained trigger"
    finally:
        client.publish(f"{PREFIX}/cmd/trigger", b"", qos=1, retain=True).wait_for_publish(5)
    assert json.loads(sub.messages[0][1]) == {
        "request_id": "live",
        "error": "Invalid request: retained commands are ignored; publish them without retain",
        "code": "retained",
    }
    # In order on one topic from one client: an answer to the empty message would come before this one.
    after = ask(client, sub, json.dumps({"imei": "12345", "request_id": "after"}).encode(), 2)
    assert (after["request_id"], after["code"]) == ("after", "invalid_imei")
    assert len(sub.messages) == 2
    assert booth.store.list() == []


def test_arm_sets_the_imei_the_next_gpio_trigger_grades(setup: Setup) -> None:
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
