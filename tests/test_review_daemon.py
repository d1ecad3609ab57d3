"""A session whose crack is weak evidence ends in review, through the real daemon: MQTT, local API, /metrics."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.booth_support import REVIEW_EVERY_CRACK, VALID_IMEI, DaemonProcess, api_base, write_config
from tests.mosquitto_broker import Collector, MosquittoBroker

PREFIX = "vision-grader/test-booth"


def test_review_session_is_published_served_and_counted(tmp_path: Path, cracked_booth_images: Path) -> None:
    with MosquittoBroker() as broker:
        collector = Collector(broker, f"{PREFIX}/#")
        mqtt = f'host = "127.0.0.1"\nport = {broker.port}\nreconnect_min_s = 1\nreconnect_max_s = 2'
        config = write_config(tmp_path / "cfg", cracked_booth_images, mqtt=mqtt, extra=REVIEW_EVERY_CRACK)
        daemon = DaemonProcess(config).start()
        try:
            daemon.wait_ready()
            base = api_base(config)
            started = httpx.post(f"{base}/api/sessions", json={"imei": VALID_IMEI, "key": "test-key"}, timeout=30)
            assert started.status_code == 202, started.text
            session_id = started.json()["sessionId"]
            topic = f"{PREFIX}/sessions/{session_id}"
            assert collector.wait_for(lambda: collector.on(topic), 120), daemon.output()

            payload = json.loads(collector.on(topic)[0])
            assert payload["status"] == "review"
            assert payload["grade"] is None
            assert payload["provisional_grade"] == "D"
            assert payload["reason"].startswith("possible crack across ")
            assert payload["reason"].endswith("check by eye")

            events = [json.loads(p) for p in collector.on(f"{PREFIX}/events")]
            review = [e for e in events if e["type"] == "review"]
            assert [e["session_id"] for e in review] == [session_id]
            assert review[0]["provisional_grade"] == payload["provisional_grade"]

            view = httpx.get(f"{base}/api/sessions/{session_id}", timeout=30).json()
            assert view["status"] == "review"
            assert view["grade"] is None
            assert view["provisional_grade"] == payload["provisional_grade"]
            assert view["reason"] == payload["reason"]
            assert view["result"]["status"] == "review"
            assert view["result"]["provisional_grade"] == payload["provisional_grade"]

            metrics = httpx.get(f"{base}/metrics", timeout=30).text
            assert 'edge_grader_sessions_stored{status="review"} 1.0' in metrics
            assert 'edge_grader_sessions_finished_total{outcome="review",source="http"} 1.0' in metrics

            # The CLI's wait says the same of a second session on the same photos.
            waited = daemon.cli("trigger", "--imei", VALID_IMEI, "--wait")
            answer = json.loads(waited.stdout)
            assert (answer["status"], answer["grade"]) == ("review", None)
            assert answer["provisional_grade"] == payload["provisional_grade"]
        finally:
            daemon.stop()
            collector.close()
