"""The cloud simulator itself: the contract's checks, its admin routes, and its command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge.cloudsim import CloudSim
from tests.booth_support import REPO, free_port, wait_for
from tests.cloudsim_support import SIM_KEY, imei, jpeg

IMEI = imei(7)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CloudSim]:
    with CloudSim(tmp_path / "cloud", SIM_KEY) as server:
        yield server


def upload(base: str, data: bytes, section: str = "front", imei_: str | None = IMEI,
           filename: str = "front-1.jpg") -> httpx.Response:
    fields = {"section": section, **({"imei": imei_} if imei_ else {})}
    return httpx.post(f"{base}/api/upload", files={"image": (filename, data, "image/jpeg")}, data=fields)


@pytest.mark.parametrize(
    ("section", "imei_", "data", "status", "error"),
    [
        ("front", IMEI, b"not an image", 400, "Invalid request: image is not a decodable JPEG or PNG"),
        ("../etc", IMEI, None, 400, "Invalid request: section must be a plain lower-case name like front"),
        ("front", "12345678901234", None, 400, "Invalid request: imei must be exactly 15 digits"),
    ],
)
def test_bad_uploads_get_the_contract_error_form(
    sim: CloudSim, section: str, imei_: str, data: bytes | None, status: int, error: str
) -> None:
    response = upload(sim.base_url, data if data is not None else jpeg(1), section, imei_)
    assert response.status_code == status
    assert response.json() == {"error": error}
    assert sim.stats()["uploads"] == 0


def test_upload_without_image_is_refused(sim: CloudSim) -> None:
    response = httpx.post(f"{sim.base_url}/api/upload", data={"section": "front"})
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid request: image file is required"}


def test_client_file_name_never_becomes_a_path(sim: CloudSim) -> None:
    answer = upload(sim.base_url, jpeg(2), filename="../../etc/passwd").json()
    assert answer["path"].startswith(f"{IMEI}/front/")
    assert "/.." not in answer["path"]
    assert answer["path"].endswith("_passwd")
    assert httpx.get(f"{sim.base_url}/images/..%2F..%2Fcloud.db").status_code == 404


def test_process_checks_json_key_imei_and_sections(sim: CloudSim) -> None:
    up = upload(sim.base_url, jpeg(3)).json()
    base = f"{sim.base_url}/api/process"
    cases = [
        (httpx.post(base, content=b"{not json", headers={"content-type": "application/json"}), 400, "not JSON"),
        (httpx.post(base, json={"key": SIM_KEY}), 400, "imei"),
        (httpx.post(base, json={"key": "x", "imei": IMEI, "images": [{"url": up["url"], "section": "front"}]}),
         401, "Invalid request: key not found"),
        (httpx.post(base, json={"key": SIM_KEY, "imei": imei(8), "images": [{"url": up["url"], "section": "front"}]}),
         400, "another imei"),
        (httpx.post(base, json={"key": SIM_KEY, "imei": IMEI, "images": [{"url": up["url"], "section": "back"}]}),
         400, "uploaded as front"),
    ]
    for response, status, words in cases:
        assert response.status_code == status
        assert words in response.json()["error"]
    assert sim.stats()["sessions"] == 0


def test_analysis_is_deterministic_for_the_same_photos(sim: CloudSim) -> None:
    def session() -> dict:
        refs = [{"url": upload(sim.base_url, jpeg(i)).json()["url"], "section": "front"} for i in range(2)]
        answer = httpx.post(f"{sim.base_url}/api/process", json={"key": SIM_KEY, "imei": IMEI, "images": refs})
        assert answer.status_code == 200
        return answer.json()

    first, second = session(), session()
    assert first["sessionId"] != second["sessionId"]
    assert first["analysis"] == second["analysis"]
    assert first["message"] == "Session created successfully"


def test_admin_routes_inject_faults_rotate_the_key_and_refuse(sim: CloudSim) -> None:
    base = sim.base_url
    rules = httpx.post(f"{base}/_sim/faults", json={"kind": "error", "status": 503, "retry_after_s": 4}).json()
    assert rules["rules"][0]["status"] == 503
    failed = upload(base, jpeg(4))
    assert failed.status_code == 503
    assert failed.headers["retry-after"] == "4"
    assert failed.json() == {"error": "Service unavailable (simulated)"}
    assert upload(base, jpeg(4)).status_code == 200

    assert httpx.post(f"{base}/_sim/faults", json={"kind": "explode"}).status_code == 400
    assert httpx.put(f"{base}/_sim/key", json={"key": "rotated"}).status_code == 200
    assert sim.key_matches("rotated")

    def refused() -> bool:
        try:
            httpx.get(f"{base}/_sim/stats", timeout=5)
        except httpx.ConnectError:
            return True
        return False

    assert httpx.post(f"{base}/_sim/refuse", json={"seconds": 5}).status_code == 200
    wait_for(refused, 30, interval=0.05)
    wait_for(lambda: not refused(), 60)
    stats = httpx.get(f"{base}/_sim/stats").json()
    assert stats["requests"]["upload"] == 2
    assert stats["faults_applied"] == {"error:upload": 1}
    assert stats["uploads"] == 1


def test_command_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SIM_KEY_FOR_TEST": "from-env"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cloudsim", "--port", str(port), "--key", "env:SIM_KEY_FOR_TEST",
         "--storage", str(tmp_path / "store")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/_sim/stats").status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return False

        wait_for(up, 60)
        url = upload(base, jpeg(5)).json()["url"]
        answer = httpx.post(f"{base}/api/process",
                            json={"key": "from-env", "imei": IMEI, "images": [{"url": url, "section": "front"}]})
        assert answer.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert (tmp_path / "store" / "cloud.db").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
