"""Every bad input of issue 4 against a live uvicorn server: the contract's error form, the right
status, and nothing lost (no upload row, no file, earlier uploads intact)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from edge.api.app import create_app
from edge.api.server import ApiServer
from edge.daemon.booth import Booth
from tests.api_support import (
    API_KEY,
    booth_config,
    files_under,
    live_api,
    phone_jpeg,
    phone_png,
    raw_http,
    stopped_booth,
)
from tests.booth_support import VALID_IMEI

TIMEOUT = httpx.Timeout(60.0)


class Live:
    def __init__(self, base: str, booth: Booth) -> None:
        self.base = base
        self.booth = booth
        self.port = int(base.rsplit(":", 1)[1])
        self.http = httpx.Client(base_url=base, timeout=TIMEOUT)

    @property
    def images_root(self) -> Path:
        return self.booth.store.images_root

    def upload(
        self,
        data: bytes,
        section: str = "front",
        imei: str | None = VALID_IMEI,
        filename: str = "front-1.jpg",
        content_type: str = "image/jpeg",
    ) -> httpx.Response:
        form = {"section": section}
        if imei is not None:
            form["imei"] = imei
        return self.http.post("/api/upload", files={"image": (filename, data, content_type)}, data=form)

    def upload_count(self) -> int:
        return int(self.booth.db.connection().execute("SELECT COUNT(*) FROM uploads").fetchone()[0])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    config = booth_config(tmp_path / "booth", tmp_path / "replay", extra_api="max_upload_mb = 1")
    booth = stopped_booth(config)
    with live_api(booth) as base:
        client = Live(base, booth)
        yield client
        client.http.close()
    booth.close()


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    return body["error"]


@pytest.fixture
def first_upload(live: Live) -> dict:
    """One good upload that every bad request after it must leave untouched."""
    response = live.upload(phone_jpeg())
    assert response.status_code == 200, response.text
    return response.json()


def assert_nothing_lost(live: Live, before: dict[str, bytes], uploads_before: int) -> None:
    assert files_under(live.images_root) == before
    assert live.upload_count() == uploads_before


def test_good_upload_answers_the_contract_shape_and_serves_the_image_back(live: Live) -> None:
    data = phone_jpeg(seed=3)
    response = live.upload(data, filename="front-1.jpg")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["section"] == "front" and body["size"] == len(data)
    imei, section, name = body["path"].split("/")
    assert (imei, section) == (VALID_IMEI, "front")
    stamp, _, filename = name.partition("_")
    assert stamp.isdigit() and filename == "front-1.jpg"
    assert body["url"] == f"{live.base}/api/images/{body['path']}"
    served = live.http.get(body["url"])
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/jpeg"
    png = live.upload(phone_png(), section="back", imei=None, filename="shot", content_type="image/png")
    assert png.status_code == 200, png.text
    assert png.json()["path"].startswith("unassigned/back/") and png.json()["path"].endswith("_shot.png")


@pytest.mark.parametrize(
    ("form", "status", "fragment"),
    [
        ({"section": "side"}, 400, "section must be one of front, back"),
        ({"section": "../../etc"}, 400, "section must be one of"),
        ({"section": "front/../../x"}, 400, "section must be one of"),
        ({"section": "front", "imei": "490154203237519"}, 400, "Luhn"),
        ({"section": "front", "imei": "49015420323751"}, 400, "15 digits"),
        ({"section": "front", "imei": "49015420323751x"}, 400, "15 digits"),
        ({"section": "front", "imei": "490154203237518" + "0" * 60}, 422, "imei"),
        ({}, 422, "section is required"),
    ],
)
def test_bad_upload_fields_are_refused_and_lose_nothing(
    live: Live, first_upload: dict, form: dict, status: int, fragment: str
) -> None:
    before, count = files_under(live.images_root), live.upload_count()
    response = live.http.post("/api/upload", files={"image": ("a.jpg", phone_jpeg(), "image/jpeg")}, data=form)
    assert_error(response, status, fragment)
    assert_nothing_lost(live, before, count)
    assert live.http.get(first_upload["url"]).status_code == 200


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"", "empty"),
        (b"GIF89a" + b"\0" * 100, "must be a JPEG or PNG"),
        (b"%PDF-1.4 not an image", "must be a JPEG or PNG"),
        (phone_jpeg()[: len(phone_jpeg()) // 2], "truncated JPEG"),
        (phone_png()[:200], "truncated PNG"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 50 + b"\xff\xd9", "JPEG"),
    ],
    ids=["empty", "gif", "pdf", "half-jpeg", "half-png", "jpeg-header-only"],
)
def test_files_that_are_not_decodable_images_are_refused(
    live: Live, first_upload: dict, payload: bytes, fragment: str
) -> None:
    before, count = files_under(live.images_root), live.upload_count()
    assert_error(live.upload(payload), 400, fragment)
    assert_nothing_lost(live, before, count)


def test_missing_image_part_is_a_422_in_the_error_form(live: Live) -> None:
    response = live.http.post("/api/upload", data={"section": "front"})
    assert_error(response, 422, "image is required")


def outside_images(live: Live) -> set[Path]:
    """Files under the test's folder that are neither stored images nor the spool database."""
    root = live.images_root.parent.parent
    return {
        p for p in root.rglob("*")
        if p.is_file() and live.images_root not in p.parents and not p.name.startswith("spool.db")
    }  # fmt: skip


def test_upload_file_name_with_a_path_is_refused_and_nothing_is_stored(live: Live) -> None:
    before, count = files_under(live.images_root), live.upload_count()
    # (A Windows full path, C:\\..., never arrives: the multipart parser keeps its last part, for old browsers.)
    for name in ("../../../etc/passwd", "..\\..\\windows\\evil.jpg", "photos/front.jpg"):
        assert_error(live.upload(phone_jpeg(), filename=name), 400, "the file name must be a name, not a path")
    assert (files_under(live.images_root), live.upload_count()) == (before, count)


def test_upload_file_name_is_reduced_to_a_safe_name(live: Live) -> None:
    before = outside_images(live)
    for name, expected in [
        ("..hidden.jpg", "hidden.jpg"),
        (".hidden.jpg", "hidden.jpg"),
        ("my photo (1).JPG", "my_photo_1.JPG"),
        ("---", "image.jpg"),
        ("x" * 300 + ".jpg", "x" * 92 + ".jpg"),
    ]:
        response = live.upload(phone_jpeg(), filename=name)
        assert response.status_code == 200, (name, response.text)
        path = response.json()["path"]
        assert path.split("/")[:2] == [VALID_IMEI, "front"]
        assert path.split("/")[2].partition("_")[2] == expected, name
        assert (live.images_root / path).is_file()
    # Nothing was written outside the images folder.
    assert outside_images(live) == before


def test_oversize_upload_is_refused_with_413_by_content_length_and_while_streaming(
    live: Live, first_upload: dict
) -> None:
    before, count = files_under(live.images_root), live.upload_count()
    big = b"\xff\xd8\xff" + b"\0" * 2_000_000  # over max_upload_mb = 1
    assert_error(live.upload(big), 413, "too large")

    # Chunked transfer has no Content-Length: the limit applies to the bytes as they arrive.
    def chunks() -> Iterator[bytes]:
        boundary = b"--b0undary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="section"\r\n\r\nfront\r\n'
        yield boundary + b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        yield b"Content-Type: image/jpeg\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 65536
        yield b"\r\n--b0undary--\r\n"

    response = live.http.post(
        "/api/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b0undary"}
    )
    assert_error(response, 413, "too large")
    assert_nothing_lost(live, before, count)


def test_image_with_more_pixels_than_allowed_is_refused_before_decoding(live: Live) -> None:
    # A valid PNG header that claims 100000 x 100000 pixels: refused from the header alone.
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    png += struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    assert_error(live.upload(png, filename="bomb.png", content_type="image/png"), 413, "pixels")


def test_progressive_jpeg_too_costly_to_decode_is_refused_from_its_header_and_a_small_one_taken(live: Live) -> None:
    # 8000x8000 in 4:4:4, under 1 MB (within max_upload_mb and the 64 MP limit), but a progressive
    # decode holds every coefficient: 366 MB, at any scale.
    flat = np.zeros((8000, 8000, 3), np.uint8)
    ok, bomb = cv2.imencode(
        ".jpg", flat,
        [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
    )  # fmt: skip
    assert ok and len(bomb) < 1_000_000
    count = live.upload_count()
    assert_error(
        live.upload(bomb.tobytes(), filename="bomb.jpg"),
        413,
        "a progressive JPEG of 8000x8000 pixels needs 366 MB to decode, at most 122 MB",
    )
    assert live.upload_count() == count
    ok, small = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(phone_jpeg(), np.uint8), cv2.IMREAD_COLOR),
                             [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])  # fmt: skip
    assert ok
    assert live.upload(small.tobytes()).status_code == 200


def process_body(urls: list[tuple[str, str]], key: str = API_KEY, imei: str = VALID_IMEI) -> dict:
    return {"key": key, "imei": imei, "images": [{"url": u, "section": s} for u, s in urls]}


@pytest.mark.parametrize(("keys", "warned"), [([""], True), (["k"], False)])
def test_a_network_bind_with_only_empty_keys_is_warned_of(
    tmp_path: Path, keys: list[str], warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # An empty credential file is no key: such a booth takes any key, and says so.
    config = booth_config(tmp_path / "booth", tmp_path / "replay")
    config.api.host = "0.0.0.0"
    config.api.keys = [SecretStr(k) for k in keys]
    daemon = stopped_booth(config)
    try:
        with caplog.at_level(logging.WARNING, logger="edge.api.server"):
            ApiServer(daemon.booth, daemon.uploads, daemon.metrics)
        assert ("anyone on the network can grade and read sessions" in caplog.text) is warned
    finally:
        daemon.close()


def test_missing_key_is_401_key_not_found(live: Live, first_upload: dict) -> None:
    body = process_body([(first_upload["url"], "front")])
    del body["key"]
    response = live.http.post("/api/process", json=body)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid request: key not found"}


@pytest.mark.parametrize("key", ["wrong", "test-ke", "test-key ", "TEST-KEY"])
def test_wrong_key_is_401_key_not_found(live: Live, first_upload: dict, key: str) -> None:
    response = live.http.post("/api/process", json=process_body([(first_upload["url"], "front")], key=key))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid request: key not found"}


def test_process_refuses_urls_this_booth_did_not_issue(live: Live, first_upload: dict) -> None:
    url = first_upload["url"]
    for bad, fragment in [
        ("https://storage.example.com/images/490154203237518/front/1703123456789_front-1.jpg", "not issued"),
        (url + "x", "not issued"),
        (url.rsplit("/", 1)[0] + "/../../../../etc/passwd", "not issued"),
        ("file:///etc/passwd", "not issued"),
        ("http://[booth/api/images/x", "not issued"),
    ]:
        response = live.http.post("/api/process", json=process_body([(bad, "front")]))
        assert_error(response, 400, fragment)


def test_process_finds_an_upload_by_its_path_whatever_host_name_its_url_has(live: Live, first_upload: dict) -> None:
    # The booth was renamed (or its port changed) between the upload and the process call: the
    # upload is still found. This booth is stopping, so the call gets that far and no further.
    renamed = first_upload["url"].replace("http://127.0.0.1:", "http://booth-7.local:")
    response = live.http.post("/api/process", json=process_body([(renamed, "front")]))
    assert_error(response, 503, "stopping")


def test_process_refuses_bad_imei_section_and_mismatches(live: Live, first_upload: dict) -> None:
    url = first_upload["url"]
    assert_error(
        live.http.post("/api/process", json=process_body([(url, "front")], imei="123456789012345")), 400, "Luhn"
    )
    assert_error(live.http.post("/api/process", json=process_body([(url, "top")])), 400, "section must be one of")
    assert_error(live.http.post("/api/process", json=process_body([(url, "back")])), 400, "uploaded as 'front'")
    assert_error(
        live.http.post("/api/process", json=process_body([(url, "front")], imei="356938035643809")),
        400,
        "different imei",
    )


def test_an_upload_removed_by_retention_is_410_gone_not_unknown(live: Live, first_upload: dict) -> None:
    ttl_s = live.booth.config.storage.upload_ttl_h * 3600
    live.booth.retention.sweep(now=time.time() + ttl_s + 60)
    assert not (live.images_root / first_upload["path"]).exists()
    response = live.http.post("/api/process", json=process_body([(first_upload["url"], "front")]))
    assert_error(response, 410, "removed by retention")
    assert live.http.get(first_upload["url"]).status_code == 404


def test_process_with_good_input_reaches_the_booth_and_its_refusal_is_mapped(live: Live, first_upload: dict) -> None:
    response = live.http.post("/api/process", json=process_body([(first_upload["url"], "front")]))
    assert_error(response, 503, "stopping")
    trigger = live.http.post("/api/sessions", json={"imei": VALID_IMEI, "key": API_KEY})
    assert_error(trigger, 503, "stopping")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"key": "test-key", "imei": "490154203237518", "images": [', 400, "not valid JSON"),
        (b"[]", 422, "Invalid request"),
        (b'"just a string"', 422, "Invalid request"),
        (b"{}", 422, "imei is required"),
        (b'{"key": 5, "imei": "490154203237518", "images": []}', 422, "key"),
        (b'{"key": "k", "imei": 490154203237518, "images": [{"url": "u", "section": "front"}]}', 422, "imei"),
        (b'{"key": "k", "imei": "490154203237518", "images": "front.jpg"}', 422, "images"),
        (b'{"key": "k", "imei": "490154203237518", "images": []}', 422, "images"),
        (b'{"key": "k", "imei": "490154203237518", "images": [{"url": "u"}]}', 422, "images.0.section is required"),
        (
            b'{"key": "k", "imei": "490154203237518", "images": [{"url": "u", "section": "front"}], "x": 1}',
            422,
            "x is not a known field",
        ),
    ],
)
def test_malformed_or_mistyped_json_is_its_own_400_or_422_never_500(
    live: Live, body: bytes, status: int, fragment: str
) -> None:
    for path in ("/api/process", "/api/sessions"):
        response = live.http.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == status, (path, response.text)  # the same for both routes
        assert set(response.json()) == {"error"}
    response = live.http.post("/api/process", content=body, headers={"content-type": "application/json"})
    assert_error(response, status, fragment)


def test_oversize_json_body_is_413_in_the_error_form(live: Live) -> None:
    body = json.dumps({"key": "k", "imei": VALID_IMEI, "images": [{"url": "u" * 2000, "section": "front"}] * 200})
    response = live.http.post("/api/process", content=body, headers={"content-type": "application/json"})
    assert_error(response, 413, "too large")


@pytest.mark.parametrize(
    "path",
    [
        "/api/images/../spool.db",
        "/api/images/%2e%2e/%2e%2e/booth.toml",
        "/api/images/490154203237518/front/..%2f..%2f..%2fbooth.toml",
        "/api/images/490154203237518/front/%2e%2e/%2e%2e/%2e%2e/spool.db",
        "/api/images//etc/passwd",
        "/api/images/490154203237518/front/.hidden",
        "/api/images/490154203237518/front/a%00.jpg",
    ],
)
def test_image_paths_that_try_to_leave_the_images_folder_are_refused(live: Live, path: str) -> None:
    raw = raw_http(live.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert status == 400, raw[:300]
    assert json.loads(body) == {"error": "Invalid request: image path must be <imei>/<section>/<file>"}
    assert b"SQLite" not in body and b"[booth]" not in body


# Starlette's TestClient gives a request a client address of our choosing; it warns of its own future.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_sessions_are_read_freely_on_the_booth_and_only_with_the_key_from_elsewhere(
    live: Live, first_upload: dict
) -> None:
    from fastapi.testclient import TestClient

    reads = ["/api/sessions", "/api/sessions/00000000-0000-4000-8000-000000000000"]
    assert [live.http.get(path).status_code for path in reads] == [200, 404]  # the booth's screen
    # The same app, asked from another machine on the shop's network.
    app = create_app(live.booth.booth, live.booth.uploads, live.booth.metrics)
    with TestClient(app, client=("192.0.2.9", 50000)) as lan:
        for path in reads:
            assert_error(lan.get(path), 401, "Invalid request: key not found")
            assert_error(lan.get(path, headers={"X-Booth-Key": "wrong"}), 401, "Invalid request: key not found")
        for key in (API_KEY, "open-sesame"):  # a client's key, or the technician's
            assert [lan.get(path, headers={"X-Booth-Key": key}).status_code for path in reads] == [200, 404]
        # An upload's url is where its image can be fetched (the contract): by its uploader, no key.
        assert lan.get(urlsplit(first_upload["url"]).path).content == phone_jpeg()


def test_unknown_image_and_session_are_404_in_the_error_form(live: Live) -> None:
    assert_error(live.http.get(f"/api/images/{VALID_IMEI}/front/1_nothing.jpg"), 404, "not found")
    assert_error(live.http.get("/api/sessions/00000000-0000-0000-0000-000000000000"), 404, "Session not found")
    assert_error(live.http.get("/api/sessions/not-a-uuid"), 404, "Session not found")
    assert_error(live.http.get("/api/nothing-here"), 404)
    assert_error(live.http.put("/api/upload"), 405)


def test_sessions_query_with_wrong_types_is_422(live: Live) -> None:
    assert_error(live.http.get("/api/sessions", params={"limit": "many"}), 422, "limit")
    assert_error(live.http.get("/api/sessions", params={"limit": 0}), 422, "limit")
    assert_error(live.http.get("/api/sessions", params={"before": "yesterday"}), 422, "before")
    response = live.http.get("/api/sessions", params={"limit": 5})
    assert response.status_code == 200 and response.json() == {"sessions": [], "next_before": None}


def test_healthz_and_metrics_report_the_booth(live: Live, first_upload: dict) -> None:
    health = live.http.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    # A stopping booth: its session worker is stopped, and /healthz says so by name.
    assert body["status"] == "down" and body["down"] == ["session-worker"] and body["booth_id"] == "test-booth"
    assert set(body["components"]) == {"cameras", "model", "broker", "cloud", "disk_free_mb", "activity", "workers"}
    components = body["components"]
    assert components["workers"] == {"session-worker": "down"}
    assert components["activity"] == "stopping"
    assert components["model"]["name"] == "booth-defects" and len(components["model"]["sha256"]) == 64
    assert components["disk_free_mb"] > 0 and set(components["cameras"]) == {"cam"}
    live.booth.status.probe("mqtt_outbox_depth", lambda: 7)
    metrics = live.http.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'edge_grader_outbox_depth{outbox="mqtt"} 7.0' in text
    assert "edge_grader_disk_free_bytes " in text
    assert "edge_grader_api_uploads_total 1.0" in text
    assert "edge_grader_grading_seconds_bucket" in text
