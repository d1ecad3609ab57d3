"""The real daemon against a real Mosquitto: results, commands, last will, delivery across restarts."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from edge.contract import BoothProcessResponse
from tests.booth_support import OTHER_IMEI, VALID_IMEI, DaemonProcess, write_config
from tests.mosquitto_broker import Collector, MosquittoBroker

PREFIX = "vision-grader/test-booth"


def _mqtt(broker: MosquittoBroker) -> str:
    return f'host = "127.0.0.1"\nport = {broker.port}\nreconnect_min_s = 1\nreconnect_max_s = 2'


def test_mqtt_trigger_result_state_and_last_will(tmp_path: Path, booth_images: Path) -> None:
    with MosquittoBroker() as broker:
        collector = Collector(broker, f"{PREFIX}/#")
        daemon = DaemonProcess(write_config(tmp_path / "cfg", booth_images, mqtt=_mqtt(broker))).start()
        try:
            daemon.wait_ready()
            assert collector.wait_for(lambda: b"online" in collector.on(f"{PREFIX}/available"), 30)
            collector.client.publish(
                f"{PREFIX}/cmd/trigger", json.dumps({"imei": VALID_IMEI, "request_id": "kiosk-1"}), qos=1
            )
            assert collector.wait_for(lambda: collector.on(f"{PREFIX}/cmd/trigger/response"), 30)
            answer = json.loads(collector.on(f"{PREFIX}/cmd/trigger/response")[0])
            assert answer["request_id"] == "kiosk-1"
            session_id = answer["sessionId"]
            topic = f"{PREFIX}/sessions/{session_id}"
            assert collector.wait_for(lambda: collector.on(topic), 90), daemon.output()
            result = BoothProcessResponse.model_validate_json(collector.on(topic)[0])
            assert result.sessionId == session_id and result.booth_id == "test-booth"
            assert set(result.analysis) == {"front", "back"}
            assert all(VALID_IMEI not in t for t, _, _ in collector.messages)
            state = json.loads(collector.on(f"{PREFIX}/state")[-1])
            assert state["model"]["name"]
            daemon.kill(signal.SIGKILL)
            assert collector.wait_for(lambda: collector.on(f"{PREFIX}/available")[-1:] == [b"offline"], 60)
        finally:
            daemon.stop()
            collector.close()


def test_results_made_while_the_broker_is_down_arrive_in_order_after_restarts(
    tmp_path: Path, booth_images: Path
) -> None:
    broker = MosquittoBroker()
    config = write_config(tmp_path / "cfg", booth_images, mqtt=f'host = "127.0.0.1"\nport = {broker.port}')
    daemon = DaemonProcess(config).start()
    sessions = []
    try:
        daemon.wait_ready()
        for imei in (VALID_IMEI, OTHER_IMEI, VALID_IMEI):
            answer = daemon.cli("trigger", "--imei", imei, "--wait")
            assert answer.returncode == 0, answer.stdout
            sessions.append(json.loads(answer.stdout)["sessionId"])
        assert daemon.kill(signal.SIGTERM) == 0
    finally:
        daemon.stop()
    with broker.start():
        collector = Collector(broker, f"{PREFIX}/sessions/#")
        restarted = DaemonProcess(config).start()
        try:
            restarted.wait_ready()
            got = collector.wait_count(f"{PREFIX}/sessions/", 3, timeout=60)
            assert [t.rsplit("/", 1)[1] for t, _ in got[:3]] == sessions
        finally:
            restarted.stop()
            collector.close()
