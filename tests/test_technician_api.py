"""The technician's routes over real HTTP: the key, test shots, calibration, review decisions."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest

from edge.api.server import ApiServer
from edge.config.load import load_config
from edge.contract import KEY_NOT_FOUND
from edge.daemon.wiring import build
from tests.booth_support import CONFIRM_EVERY_CRACK, VALID_IMEI, DaemonProcess, api_base, free_port, write_config

KEY = {"X-Booth-Key": "open-sesame"}


def test_technician_routes_need_the_key_and_act_on_the_running_booth(tmp_path: Path, booth_images: Path) -> None:
    config = write_config(tmp_path / "cfg", booth_images, extra=CONFIRM_EVERY_CRACK)
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_ready()
        base = api_base(config)
        with httpx.Client(base_url=base, timeout=60) as http:
            # The clients' key (kiosk software holds it) is not the technician's.
            for headers in ({}, {"X-Booth-Key": "wrong"}, {"X-Booth-Key": "test-key"}):
                refused = http.get("/api/tech/state", headers=headers)
                assert (refused.status_code, refused.json()) == (401, {"error": KEY_NOT_FOUND})
            state = http.get("/api/tech/state", headers=KEY).json()
            assert state["booth_id"] == "test-booth"
            assert state["cameras"] == {"cam": "ready"}
            assert len(state["model"]["sha256"]) == 64
            assert state["outbox_depth"] == {"mqtt": 0, "cloud": 0}
            assert state["broker"] == {"enabled": False, "connected": False}

            shot = http.post("/api/tech/cameras/cam/test-shot", headers=KEY).json()
            assert shot["camera"] == "cam" and shot["preview"].startswith("data:image/jpeg;base64,")
            assert shot["ok"] is True, shot["verdict"]
            missing = http.post("/api/tech/cameras/nope/test-shot", headers=KEY)
            assert missing.status_code == 503 and "no camera 'nope'" in missing.json()["error"]

            refused = http.post("/api/tech/cameras/cam/calibrate", headers=KEY, json={})
            assert refused.status_code == 409 and "empty the booth" in refused.json()["error"]
            reference = tmp_path / "cfg" / "state" / "calibration" / "cam.png"
            assert not reference.exists()
            forced = http.post("/api/tech/cameras/cam/calibrate", headers=KEY, json={"force": True}).json()
            assert forced == {"success": True, "camera": "cam", "stored": "cam.png"}
            assert reference.is_file()

            decision = {"grade": "B", "technician": "Sam", "note": ""}
            unknown = http.post(f"/api/tech/reviews/{uuid.uuid4()}", headers=KEY, json=decision)
            assert (unknown.status_code, unknown.json()) == (404, {"error": "Session not found"})
            graded = daemon.cli("trigger", "--imei", VALID_IMEI, "--wait")
            session_id = json.loads(graded.stdout)["sessionId"]
            conflict = http.post(f"/api/tech/reviews/{session_id}", headers=KEY, json=decision)
            assert conflict.status_code == 409
            assert conflict.json() == {"error": "Conflict: session is graded, not waiting for a review"}
            assert http.get("/api/tech/reviews", headers=KEY).json() == []
            events = http.get("/api/tech/events", headers=KEY).json()
            assert [e["type"] for e in events][:2] == ["graded", "session_started"]
    finally:
        daemon.stop()


# No keys at all (an empty credential is no key), and the clients' key alone: neither opens it.
@pytest.mark.parametrize("keys", ['keys = []\ntechnician_keys = [""]', 'keys = ["test-key"]\ntechnician_keys = []'])
def test_without_technician_keys_there_is_no_technician_view(
    tmp_path: Path, booth_images: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path / "cfg", booth_images, api_port=free_port())
    path.write_text(path.read_text().replace('keys = ["test-key"]\ntechnician_keys = ["open-sesame"]', keys))
    daemon = build(load_config(path))
    daemon.booth.stop()
    with caplog.at_level(logging.WARNING, logger="edge.api.server"):
        server = ApiServer(daemon.booth, daemon.uploads, daemon.metrics, daemon.desk)
    assert "no [api] technician_keys: the technician's view is off and reviews cannot be decided" in caplog.text
    server.start()
    try:
        for key in ("", "any", "test-key"):
            answer = httpx.get(f"http://127.0.0.1:{server.port}/api/tech/state", headers={"X-Booth-Key": key})
            assert answer.status_code == 403
            assert answer.json() == {"error": "Technician view is off: set [api] technician_keys to use it"}
    finally:
        server.stop()
        daemon.close()
