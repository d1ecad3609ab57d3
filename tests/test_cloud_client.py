"""The contract client against the simulator: shapes parsed with the shared models, errors kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from edge.cloudsim import CloudSim
from edge.config.cloud import CloudConfig
from edge.contract import ImageRef, ProcessResponse, UploadResponse
from edge.mirror.client import (
    CloudClient,
    CloudContractError,
    CloudHttpError,
    CloudTransportError,
    parse_retry_after,
)
from tests.cloudsim_support import FAST, SHORT_READ_S, SIM_KEY, imei, jpeg

IMEI = imei(1)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CloudSim]:
    with CloudSim(tmp_path / "cloud", SIM_KEY) as server:
        yield server


@pytest.fixture
def client(sim: CloudSim) -> Iterator[CloudClient]:
    with CloudClient(CloudConfig(base_url=sim.base_url, api_key=SIM_KEY, **FAST)) as c:
        yield c


def test_upload_answers_the_contract_shape_and_the_url_serves_the_bytes(client: CloudClient, sim: CloudSim) -> None:
    data = jpeg(1)
    answer = client.upload(data, "front-1.jpg", "front", IMEI)
    assert isinstance(answer, UploadResponse)
    assert answer.section == "front"
    assert answer.size == len(data)
    assert re.fullmatch(rf"{IMEI}/front/\d{{13}}_front-1\.jpg", answer.path)
    assert answer.url.endswith("/images/" + answer.path)
    assert httpx.get(answer.url).content == data


def test_process_returns_a_session_with_analysis_per_section(client: CloudClient) -> None:
    refs = []
    for i, section in enumerate(["front", "front", "back"]):
        up = client.upload(jpeg(i), f"{section}-{i}.jpg", section, IMEI)
        refs.append(ImageRef(url=up.url, section=up.section))
    answer = client.process(SIM_KEY, IMEI, refs)
    assert isinstance(answer, ProcessResponse)
    assert answer.imei == IMEI
    assert set(answer.analysis) == {"front", "back"}
    assert all(0 <= part.score <= 100 for part in answer.analysis.values())
    assert [image.url for image in answer.images] == [ref.url for ref in refs]


def test_wrong_key_is_an_http_error_in_the_contract_form(client: CloudClient) -> None:
    up = client.upload(jpeg(2), "back-1.jpg", "back", IMEI)
    with pytest.raises(CloudHttpError) as caught:
        client.process("not-the-key", IMEI, [ImageRef(url=up.url, section="back")])
    assert caught.value.status == 401
    assert caught.value.error == "Invalid request: key not found"


def test_url_not_issued_by_the_cloud_is_refused(client: CloudClient) -> None:
    with pytest.raises(CloudHttpError) as caught:
        client.process(SIM_KEY, IMEI, [ImageRef(url="http://elsewhere.invalid/x.jpg", section="front")])
    assert caught.value.status == 400
    assert "not issued" in caught.value.error


def test_answer_that_does_not_fit_is_an_error_with_the_body_kept(client: CloudClient, sim: CloudSim) -> None:
    sim.add_fault(kind="malformed", endpoint="upload")
    with pytest.raises(CloudContractError) as caught:
        client.upload(jpeg(3), "front-1.jpg", "front", IMEI)
    assert caught.value.status == 200
    assert "simulated answer that does not fit the contract" in caught.value.body
    assert "url" in caught.value.problem


def test_rate_limit_carries_retry_after(client: CloudClient, sim: CloudSim) -> None:
    sim.add_fault(kind="error", status=429, retry_after_s=7, endpoint="upload")
    with pytest.raises(CloudHttpError) as caught:
        client.upload(jpeg(4), "front-1.jpg", "front", IMEI)
    assert caught.value.status == 429
    assert caught.value.retry_after_s == 7.0
    assert caught.value.error == "Too many requests (simulated)"


def test_refused_connection_is_known_not_sent(client: CloudClient, sim: CloudSim) -> None:
    sim.stop_listening()
    with pytest.raises(CloudTransportError) as caught:
        client.upload(jpeg(5), "front-1.jpg", "front", IMEI)
    assert caught.value.sent is False
    sim.start_listening()
    assert client.upload(jpeg(5), "front-1.jpg", "front", IMEI).section == "front"


def test_slow_answer_beyond_read_timeout_may_have_been_stored(sim: CloudSim) -> None:
    sim.add_fault(kind="slow", delay_s=SHORT_READ_S * 3, endpoint="upload")
    config = CloudConfig(base_url=sim.base_url, api_key=SIM_KEY, **{**FAST, "read_timeout_s": SHORT_READ_S})
    with CloudClient(config) as client, pytest.raises(CloudTransportError) as caught:
        client.upload(jpeg(6), "front-1.jpg", "front", IMEI)
    assert caught.value.sent is True
    assert sim.stats()["uploads"] == 1  # the cloud kept it although the client never heard back


def test_dropped_connection_mid_upload_is_a_transport_error(client: CloudClient, sim: CloudSim) -> None:
    sim.add_fault(kind="drop", endpoint="upload")
    with pytest.raises(CloudTransportError) as caught:
        client.upload(jpeg(7, 1600, 1200), "front-1.jpg", "front", IMEI)
    assert caught.value.sent is True
    assert sim.stats()["uploads"] == 0


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
