"""The MQTT link: config checks, CONNACK refusals, quiet outages, the broker helper's own failure."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.config.mqtt import MqttConfig
from edge.publish.mqtt_link import MqttLink
from edge.publish.topics import Topics, session_suffix
from tests import mosquitto_broker
from tests.booth_support import wait_for
from tests.mosquitto_broker import MosquittoBroker


def test_config_rejects_inconsistent_bounds_and_wildcard_prefixes() -> None:
    with pytest.raises(ValidationError, match="max_queued must be larger"):
        MqttConfig(max_inflight=50, max_queued=50)
    with pytest.raises(ValidationError, match="reconnect_max_s"):
        MqttConfig(reconnect_min_s=10, reconnect_max_s=5)
    with pytest.raises(ValidationError, match="wildcards"):
        MqttConfig(topic_prefix="vision-grader/#")
    with pytest.raises(ValidationError, match="extra"):
        MqttConfig(outbox_size=3)
    assert MqttConfig().outbox_full_policy == "drop-oldest"


def test_topics_never_take_a_path_or_wildcard_as_session_id() -> None:
    topics = Topics.for_booth("vision-grader/{booth_id}", "b1")
    assert topics.of(session_suffix("abc-1")) == "vision-grader/b1/sessions/abc-1"
    assert topics.of(session_suffix("abc-1", cloud=True)) == "vision-grader/b1/sessions/abc-1/cloud"
    for bad in ("a/b", "#", "+", "", "../x"):
        with pytest.raises(ValueError):
            session_suffix(bad)


def test_refused_connack_is_not_counted_as_connected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = MosquittoBroker(anonymous=False).start()
    try:
        config = MqttConfig(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1)
        link = MqttLink(config, "b1", Topics("vision-grader/b1"))
        with caplog.at_level(logging.WARNING, logger="edge.publish"):
            link.start()
            assert not link.wait_connected(3)
            assert wait_for(lambda: any("refused" in r.getMessage() for r in caplog.records), 30)
            link.stop()
        assert link.connect_count == 0
    finally:
        broker.close()


def test_outage_logs_one_warning_then_a_periodic_reminder(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    config = MqttConfig(outage_reminder_s=300)
    link = MqttLink(config, "b1", Topics("vision-grader/b1"), clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="edge.publish"):
        for _ in range(100):  # 100 failed attempts, 10 s apart: 1000 s of outage
            link._on_connect_fail(link.client, None)
            now[0] += 10
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 + 3, warnings  # the first, then at 300, 600 and 900 s
    assert "still away" in warnings[1]


def test_broker_helper_fails_clearly_without_mosquitto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mosquitto_broker.shutil, "which", lambda name: None)
    monkeypatch.setattr(mosquitto_broker.Path, "exists", lambda self: False)
    with pytest.raises(RuntimeError, match="apt-get install -y mosquitto"):
        MosquittoBroker()
