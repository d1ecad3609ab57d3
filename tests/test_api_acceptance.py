"""Acceptance of issue 4 against the real Booth and the real model, through a live uvicorn server:
the seed's Python client and its curl commands, /api/process persisted as a session, the capture
trigger, and the session endpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from edge.config.load import load_config
from edge.daemon.wiring import Daemon, build
from edge.synth import render_scene
from tests.api_support import live_api
from tests.booth_support import VALID_IMEI, free_port, wait_for, write_config

SEED_CLIENT = Path(__file__).parent / "fixtures" / "api" / "seed_client.txt"
CLOUD = "https://vision-grader.pandas.io"
SEED_IMEI = "123456789012345"  # the seed's example; its Luhn check digit is wrong
SEED_KEY = "your-api-key-here"
SEED_FILES = [
    ("front-1.jpg", "front"),
    ("front-2.jpg", "front"),
    ("front-3.jpg", "front"),
    ("front-4.jpg", "front"),
    ("back-1.jpg", "back"),
    ("back-2.jpg", "back"),
]


def render_photos(folder: Path) -> Path:
    """Real phone photos: the seed's six file names, and per-section folders for the replay cameras."""
    rng = np.random.default_rng(4)
    folder.mkdir(parents=True, exist_ok=True)
    for name, face in SEED_FILES:
        render = render_scene(rng, 1600, 1200, face=face, defects={"scratch": 1}, blur_sigma=0.0, exposure=1.0)
        (folder / name).write_bytes(render.jpeg)
        (folder / face).mkdir(exist_ok=True)
        (folder / face / name).write_bytes(render.jpeg)
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_photos(tmp_path_factory.mktemp("seed-photos"))


@pytest.fixture
def booth_base(tmp_path: Path, photos: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Daemon, str]]:
    imei_check = getattr(request, "param", "luhn")
    config_path = write_config(tmp_path / "booth", photos, api_port=free_port())
    text = config_path.read_text().replace('keys = ["test-key"]', f'keys = ["{SEED_KEY}"]')
    config_path.write_text(text.replace('id = "test-booth"', f'id = "test-booth"\nimei_check = "{imei_check}"'))
    booth = build(load_config(config_path))
    booth.booth.start()
    try:
        with live_api(booth) as base:
            yield booth, base
    finally:
        booth.booth.stop()
        booth.close()


def run_seed(source: str, cwd: Path) -> str:
    script = cwd / "client.py"
    script.write_text(source)
    done = subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_seed_python_client_runs_against_the_booth_with_only_its_base_url_changed(
    booth_base: tuple[Daemon, str], photos: Path
) -> None:
    booth, base = booth_base
    seed = SEED_CLIENT.read_text()
    assert seed.count(CLOUD) == 2 and SEED_IMEI in seed

    # Exactly the seed with the booth's URL: its example IMEI fails the Luhn check, and the client
    # prints the booth's clear refusal; nothing is stored.
    out = run_seed(seed.replace(CLOUD, base), photos)
    assert "Upload failed" in out and "Luhn" in out, out
    assert booth.store.list() == []

    # With a real IMEI (a kiosk reads it from the phone) the seed flow gives a session and analysis.
    out = run_seed(seed.replace(CLOUD, base).replace(SEED_IMEI, VALID_IMEI), photos)
    assert "Session created successfully:" in out, out
    session_line = next(line for line in out.splitlines() if line.startswith("Session ID:"))
    session_id = session_line.split(":", 1)[1].strip()
    analysis_line = next(line for line in out.splitlines() if line.startswith("Analysis results:"))
    assert "'front'" in analysis_line and "'back'" in analysis_line and "'score'" in analysis_line

    record = booth.store.get(session_id)
    assert record is not None and record.source == "api" and record.status == "graded"
    assert record.result is not None and set(record.result["analysis"]) == {"front", "back"}
    originals = booth.store.images(session_id, "original")
    assert sorted(i.section for i in originals) == ["back", "back", "front", "front", "front", "front"]


@pytest.mark.parametrize("booth_base", ["digits"], indirect=True)
def test_seed_python_client_runs_unchanged_on_a_test_rig_booth(booth_base: tuple[Daemon, str], photos: Path) -> None:
    # A kiosk test rig that uses placeholder IMEIs sets imei_check = "digits": the seed runs as published.
    booth, base = booth_base
    out = run_seed(SEED_CLIENT.read_text().replace(CLOUD, base), photos)
    assert "Session created successfully:" in out, out
    session_id = next(line for line in out.splitlines() if line.startswith("Session ID:")).split(":", 1)[1].strip()
    analysis_line = next(line for line in out.splitlines() if line.startswith("Analysis results:"))
    assert "'front'" in analysis_line and "'back'" in analysis_line
    record = booth.store.get(session_id)
    assert record is not None and record.imei == SEED_IMEI


def curl(*args: str) -> dict:
    done = subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_seed_curl_commands_run_against_the_booth(booth_base: tuple[Daemon, str], photos: Path) -> None:
    _booth, base = booth_base
    uploaded = []
    for name, section in SEED_FILES:
        uploaded.append(
            curl(
                "-X",
                "POST",
                f"{base}/api/upload",
                "-F",
                f"image=@{photos / name}",
                "-F",
                f"section={section}",
                "-F",
                f"imei={VALID_IMEI}",
            )
        )
    assert all(u["success"] is True for u in uploaded)
    body = {
        "key": SEED_KEY,
        "imei": VALID_IMEI,
        "images": [{"url": u["url"], "section": u["section"]} for u in uploaded],
    }
    result = curl("-X", "POST", f"{base}/api/process", "-H", "Content-Type: application/json", "-d", json.dumps(body))
    assert result["success"] is True and result["message"] == "Session created successfully"
    assert result["imei"] == VALID_IMEI and set(result["analysis"]) == {"front", "back"}
    for section in ("front", "back"):
        analysis = result["analysis"][section]
        assert 0 <= analysis["score"] <= 100
        assert isinstance(analysis["issues"], list) and isinstance(analysis["recommendations"], list)
    assert {i["section"] for i in result["images"]} == {"front", "back"}
    # The images of the answer are served back by the booth.
    first = result["images"][0]
    served = httpx.get(first["url"], timeout=30)
    assert served.status_code == 200 and len(served.content) == first["size"]

    wrong = subprocess.run(
        [
            "curl",
            "-sS",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            f"{base}/api/process",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({**body, "key": "nope"}),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    payload, status = wrong.stdout.rsplit("\n", 1)
    assert status == "401" and json.loads(payload) == {"error": "Invalid request: key not found"}


def test_process_answer_is_persisted_as_a_session_and_listed_newest_first(
    booth_base: tuple[Daemon, str], photos: Path
) -> None:
    booth, base = booth_base
    finished: list[str] = []
    booth.events.subscribe(lambda event: finished.append(event["session_id"]) if event["type"] == "graded" else None)
    with httpx.Client(base_url=base, timeout=600) as http:
        urls = []
        for name, section in SEED_FILES[:1] + SEED_FILES[4:5]:
            response = http.post(
                "/api/upload",
                files={"image": (name, (photos / name).read_bytes(), "image/jpeg")},
                data={"section": section},
            )  # no imei: the process call names it
            assert response.status_code == 200, response.text
            urls.append({"url": response.json()["url"], "section": section})
        first = http.post("/api/process", json={"key": SEED_KEY, "imei": VALID_IMEI, "images": urls}).json()
        # The same uploads serve a second process call: each session owns its own copy.
        second = http.post("/api/process", json={"key": SEED_KEY, "imei": VALID_IMEI, "images": urls}).json()
        assert first["sessionId"] != second["sessionId"]
        assert finished[-2:] == [first["sessionId"], second["sessionId"]]

        page = http.get("/api/sessions", params={"limit": 1}).json()
        assert [s["sessionId"] for s in page["sessions"]] == [second["sessionId"]]
        older = http.get("/api/sessions", params={"limit": 1, "before": page["next_before"]}).json()
        assert [s["sessionId"] for s in older["sessions"]] == [first["sessionId"]]

        view = http.get(f"/api/sessions/{first['sessionId']}").json()
        assert view["status"] == "graded" and view["result"]["sessionId"] == first["sessionId"]
        assert {i["kind"] for i in view["images"]} >= {"original"}
        for image in view["images"]:
            assert http.get(image["url"]).status_code == 200

        metrics = http.get("/metrics").text
        assert 'edge_grader_sessions_finished_total{outcome="' in metrics and 'source="api"' in metrics


def test_post_sessions_triggers_a_capture_and_answers_the_id_at_once(booth_base: tuple[Daemon, str]) -> None:
    _booth, base = booth_base
    with httpx.Client(base_url=base, timeout=60) as http:
        refused = http.post("/api/sessions", json={"imei": VALID_IMEI, "key": "nope"})
        assert refused.status_code == 401
        response = http.post("/api/sessions", json={"imei": VALID_IMEI, "key": SEED_KEY, "request_id": "kiosk-1"})
        assert response.status_code == 202, response.text
        session_id = response.json()["sessionId"]

        def done() -> dict | None:
            view = http.get(f"/api/sessions/{session_id}").json()
            return view if view["status"] in ("graded", "retake", "failed") else None

        view = wait_for(done, timeout=300, interval=0.5)
        assert view["source"] == "http" and view["request_id"] == "kiosk-1"
        assert view["status"] == "graded", view["reason"]
        assert set(view["result"]["analysis"]) == {"front", "back"}


def test_an_upload_damaged_on_disk_fails_its_session_in_the_error_form(
    booth_base: tuple[Daemon, str], photos: Path
) -> None:
    booth, base = booth_base
    with httpx.Client(base_url=base, timeout=600) as http:
        uploaded = http.post(
            "/api/upload",
            files={"image": ("front-1.jpg", (photos / "front-1.jpg").read_bytes(), "image/jpeg")},
            data={"section": "front", "imei": VALID_IMEI},
        ).json()
        # The disk, not the client, spoils the file after the upload was checked.
        (booth.store.images_root / uploaded["path"]).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg any more")
        response = http.post(
            "/api/process",
            json={"key": SEED_KEY, "imei": VALID_IMEI, "images": [{"url": uploaded["url"], "section": "front"}]},
        )
    assert response.status_code == 500
    assert response.json()["error"].startswith("Grading failed: images cannot be graded")
    failed = booth.store.list(limit=1)[0]
    assert failed.status == "failed" and failed.source == "api"
    assert len(booth.store.images(failed.id, "original")) == 1  # kept for diagnosis
