"""The cloud mirror end to end in-process: real spool, real simulator over HTTP, faults injected."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from edge.api.metrics import ApiMetrics
from edge.backoff import backoff_delay
from edge.cloudsim import CloudSim
from edge.config.cloud import CloudConfig
from edge.config.storage import StorageConfig
from edge.contract import BoothProcessResponse, BoothSectionAnalysis, ModelInfo, ProcessResponse, UploadResponse
from edge.daemon.booth import with_cloud_analysis
from edge.mirror.client import CloudClient
from edge.spool.retention import Retention
from tests.booth_support import wait_for
from tests.clock_support import SteppedClock
from tests.cloudsim_support import BOOTH_SCORES, FAST, SHORT_READ_S, SIM_KEY, MirrorHarness, images_of, imei

TIMEOUT = 90.0


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CloudSim]:
    with CloudSim(tmp_path / "cloud", SIM_KEY) as server:
        yield server


@pytest.fixture
def harness(tmp_path: Path, sim: CloudSim) -> Iterator[MirrorHarness]:
    h = MirrorHarness(tmp_path / "booth", sim.base_url)
    yield h
    h.close()


def all_mirrored(h: MirrorHarness, ids: list[str]) -> bool:
    return all(h.cloud(sid) is not None for sid in ids)


def max_requests(elapsed_s: float, base_s: float, cap_s: float) -> int:
    """Most requests a sender can make while every one fails: each is followed by at least half its backoff."""
    count, spent = 1, 0.0
    while True:
        spent += 0.5 * min(cap_s, base_s * 2 ** (count - 1))
        if spent > elapsed_s:
            return count
        count += 1


def test_session_made_offline_is_mirrored_when_the_cloud_comes_up(harness: MirrorHarness, sim: CloudSim) -> None:
    sim.stop_listening()
    harness.start()
    ids = [harness.session(imei(n)).id for n in range(2)]
    wait_for(lambda: harness.cloud_status()["reachability"] == "unreachable", TIMEOUT)
    assert harness.status.snapshot()["cloud_outbox_depth"] == 2  # the probe /metrics reads: at once
    wait_for(lambda: harness.cloud_status()["outbox_depth"] == 2, TIMEOUT)  # published by the mirror's thread
    assert all(harness.cloud(sid) is None for sid in ids)

    sim.start_listening()
    wait_for(lambda: all_mirrored(harness, ids), TIMEOUT)
    stats = sim.stats()
    assert stats["sessions"] == 2
    assert stats["uploads"] == sum(images_of(harness.db, sid) for sid in ids)
    status = harness.cloud_status()
    assert status["reachability"] == "reachable"
    assert status["outbox_depth"] == 0
    assert status["mirrored"] == 2
    cloud = harness.cloud(ids[0])
    assert cloud is not None
    assert set(cloud["analysis"]) == {"front", "back"}
    # The comparison puts each section's booth score beside the cloud's.
    for section, row in cloud["comparison"].items():
        assert row["booth"] == BOOTH_SCORES[section]
        assert row["difference"] == cloud["analysis"][section]["score"] - BOOTH_SCORES[section]
    assert {e["session_id"] for e in harness.events_of("mirrored")} == set(ids)


def test_a_session_waiting_out_a_retry_after_goes_at_once_when_the_clock_is_set_back(
    tmp_path: Path, sim: CloudSim
) -> None:
    clock = SteppedClock()
    harness = MirrorHarness(tmp_path / "booth", sim.base_url, clock=clock)
    try:
        sim.add_fault(kind="error", status=429, retry_after_s=10, endpoint="upload", count=1)
        session_id = harness.session(imei(30)).id
        harness.start()
        wait_for(lambda: sim.stats()["faults_active"] == [], TIMEOUT)
        assert harness.cloud(session_id) is None  # still waiting out the Retry-After: the step lands in it
        clock.step(-3600)  # NTP sets the booth's clock back while it waits
        wait_for(lambda: all_mirrored(harness, [session_id]), TIMEOUT)
        assert sim.stats()["sessions"] == 1
    finally:
        harness.close()


def test_an_endless_answer_is_cut_off_and_the_session_mirrored_on_its_retry(
    harness: MirrorHarness, sim: CloudSim
) -> None:
    # 256 MB of answer, read whole, would take the booth past its unit's memory limit at every retry.
    sim.add_fault(kind="oversized", endpoint="process", size_mb=256)
    session_id = harness.session(imei(31)).id
    harness.start()
    wait_for(lambda: all_mirrored(harness, [session_id]), TIMEOUT)
    stats = sim.stats()
    assert stats["faults_applied"] == {"oversized:process": 1}
    assert stats["oversized_bytes_sent"] < 64 * 1024 * 1024  # the client hung up after its 1 MB
    assert stats["sessions"] == 1
    assert harness.queue.sends(session_id)["process"] == 2


def test_faults_every_session_mirrored_once_except_for_lost_answers(tmp_path: Path, sim: CloudSim) -> None:
    # A flat read timeout, so that the slow process answer is really lost (a duplicate to count).
    flat = {"read_timeout_s": SHORT_READ_S, "read_timeout_per_image_s": 0, "read_timeout_per_mb_s": 0}
    harness = MirrorHarness(tmp_path / "booth", sim.base_url, **flat)
    try:
        _check_faults(harness, sim)
    finally:
        harness.close()


def _check_faults(harness: MirrorHarness, sim: CloudSim) -> None:
    sessions = {imei(n): harness.session(imei(n), {"front": 2, "back": 1}).id for n in range(10, 14)}
    sim.add_fault(kind="error", status=500, endpoint="upload", count=2)
    sim.add_fault(kind="error", status=429, retry_after_s=1, endpoint="any", count=2)
    sim.add_fault(kind="drop", endpoint="upload", count=2)
    sim.add_fault(kind="slow", delay_s=SHORT_READ_S * 2, endpoint="upload", count=1)
    sim.add_fault(kind="error", status=503, endpoint="process", count=1)
    sim.add_fault(kind="slow", delay_s=SHORT_READ_S * 2, endpoint="process", count=1)
    harness.start()
    wait_for(lambda: all_mirrored(harness, list(sessions.values())), TIMEOUT)

    stats = sim.stats()
    assert stats["faults_active"] == []  # every fault was hit
    print(f"faults: {stats['faults_applied']}, uploads {stats['uploads']}, sessions {stats['sessions']}")
    applied = stats["faults_applied"]
    images = sum(images_of(harness.db, sid) for sid in sessions.values())
    # A slow answer arrives after the client gave up: the cloud kept that upload/session, the client
    # sent it again. Those, and only those, are the duplicates.
    assert stats["uploads"] == images + applied.get("slow:upload", 0)
    assert stats["sessions"] == len(sessions) + applied.get("slow:process", 0)
    assert all(stats["sessions_by_imei"][number] >= 1 for number in sessions)
    for number, sid in sessions.items():
        sends = harness.queue.sends(sid)
        assert stats["uploads_by_imei"][number] <= sends["uploads"]
        assert stats["sessions_by_imei"][number] <= sends["process"]
    assert harness.cloud_status()["outbox_depth"] == 0
    assert harness.events_of("dead_lettered") == []


def test_requests_during_an_outage_stay_bounded(harness: MirrorHarness, sim: CloudSim) -> None:
    for n in range(20, 25):
        harness.session(imei(n))
    sim.add_fault(kind="error", status=500, count=None)
    started = time.monotonic()
    harness.start()
    time.sleep(6)
    during = sum(sim.stats()["requests"].values())
    elapsed = time.monotonic() - started
    bound = max_requests(elapsed, FAST["backoff_base_s"], FAST["backoff_cap_s"])
    # A tight loop would make thousands; backoff allows at most `bound`, and it keeps trying.
    assert 2 <= during <= bound, (during, bound)
    print(f"outage of {elapsed:.1f} s with 500s: {during} requests (bound {bound})")
    assert harness.cloud_status()["reachability"] == "unreachable"
    sim.clear_faults()
    wait_for(lambda: harness.cloud_status()["outbox_depth"] == 0, TIMEOUT)


def test_requests_while_connections_are_refused_stay_bounded(harness: MirrorHarness, sim: CloudSim) -> None:
    harness.session(imei(30))
    sim.stop_listening()
    started = time.monotonic()
    harness.start()
    time.sleep(5)
    elapsed = time.monotonic() - started
    attempts = harness.mirror.requests
    bound = max_requests(elapsed, FAST["backoff_base_s"], FAST["backoff_cap_s"])
    assert 2 <= attempts <= bound, (attempts, bound)
    print(f"{elapsed:.1f} s of refused connections: {attempts} attempts (bound {bound})")
    sim.start_listening()
    wait_for(lambda: harness.cloud_status()["outbox_depth"] == 0, TIMEOUT)
    assert sim.stats()["sessions"] == 1


def test_backoff_is_capped_and_jittered() -> None:
    delays = [backoff_delay(n, 2.0, 300.0) for n in range(1, 30)]
    assert all(0 < d <= 300.0 for d in delays)
    assert delays[0] <= 2.0
    assert min(delays[10:]) >= 150.0  # at the cap: never below half of it
    assert len({round(d, 6) for d in delays[10:]}) > 1  # jitter: not all the same


def test_refused_key_dead_letters_with_an_event_and_the_rest_go_on(harness: MirrorHarness, sim: CloudSim) -> None:
    ids = [harness.session(imei(n)).id for n in range(40, 43)]
    sim.add_fault(kind="reject_key", endpoint="process", count=1)
    harness.start()
    wait_for(lambda: harness.cloud_status()["outbox_depth"] == 0, TIMEOUT)
    dead = harness.events_of("dead_lettered")
    assert [e["session_id"] for e in dead] == [ids[0]]
    assert dead[0]["status"] == 401
    assert dead[0]["error"] == "HTTP 401: Invalid request: key not found"
    assert harness.cloud(ids[0]) is None
    assert all_mirrored(harness, ids[1:])
    status = harness.cloud_status()
    assert status["dead_letters"] == 1
    assert harness.queue.dead_letters()[0]["session_id"] == ids[0]


def test_wrong_key_sessions_are_sent_again_once_the_key_is_fixed(tmp_path: Path, sim: CloudSim) -> None:
    wrong = MirrorHarness(tmp_path / "booth", sim.base_url, key="wrong-key").start()
    ids = [wrong.session(imei(n)).id for n in range(50, 52)]
    wait_for(lambda: len(wrong.events_of("dead_lettered")) == 2, TIMEOUT)
    assert wrong.cloud_status()["dead_letters"] == 2
    uploads_before = sim.stats()["uploads"]
    wrong.close()

    fixed = MirrorHarness(tmp_path / "booth", sim.base_url).start()
    try:
        wait_for(lambda: all_mirrored(fixed, ids), TIMEOUT)
        assert fixed.cloud_status()["dead_letters"] == 0
        assert sim.stats()["uploads"] == uploads_before  # the stored upload answers were reused
    finally:
        fixed.close()


def test_upload_answers_are_reused_after_a_restart(tmp_path: Path, sim: CloudSim) -> None:
    first = MirrorHarness(tmp_path / "booth", sim.base_url)
    session = first.session(imei(60), {"front": 3, "back": 2})
    sim.add_fault(kind="error", status=500, endpoint="process", count=None)
    first.start()
    wait_for(lambda: first.uploaded_images(session.id) == 5, TIMEOUT)
    first.close()
    sim.clear_faults()
    assert sim.stats()["uploads"] == 5

    second = MirrorHarness(tmp_path / "booth", sim.base_url).start()
    try:
        wait_for(lambda: second.cloud(session.id) is not None, TIMEOUT)
        assert sim.stats()["uploads"] == 5
        assert sim.stats()["sessions"] == 1
    finally:
        second.close()


def test_upload_answers_without_path_and_size_are_mirrored_and_reused(tmp_path: Path, sim: CloudSim) -> None:
    # The contract's second upload example has only success, url and section.
    first = MirrorHarness(tmp_path / "booth", sim.base_url)
    session = first.session(imei(61), {"front": 2, "back": 1})
    sim.add_fault(kind="brief", endpoint="upload", count=None)
    sim.add_fault(kind="error", status=500, endpoint="process", count=None)
    first.start()
    wait_for(lambda: first.uploaded_images(session.id) == 3, TIMEOUT)
    first.close()
    sim.clear_faults()

    second = MirrorHarness(tmp_path / "booth", sim.base_url).start()
    try:
        wait_for(lambda: second.cloud(session.id) is not None, TIMEOUT)
        assert (sim.stats()["uploads"], sim.stats()["sessions"]) == (3, 1)
        assert first.events_of("dead_lettered") == second.events_of("dead_lettered") == []
    finally:
        second.close()


class CrashAfterUpload(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the mirror catches it."""


class CrashingClient(CloudClient):
    """A real client whose process dies right after the Nth upload answer arrived, before it is stored."""

    def __init__(self, crash_after: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.left = crash_after

    def upload(self, image: bytes, filename: str, section: str, imei: str) -> UploadResponse:
        answer = super().upload(image, filename, section, imei)
        self.left -= 1
        if self.left == 0:
            raise CrashAfterUpload
        return answer


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_crash_between_upload_and_stored_answer_re_uploads_only_that_image(tmp_path: Path, sim: CloudSim) -> None:
    client = CrashingClient(2, config=CloudConfig(base_url=sim.base_url, api_key=SIM_KEY, **FAST))
    crashing = MirrorHarness(tmp_path / "booth", sim.base_url, client=client)
    session = crashing.session(imei(70), {"front": 2, "back": 2})
    crashing.start()
    wait_for(lambda: client.left == 0, TIMEOUT)
    wait_for(lambda: not crashing.mirror.worker.alive(), TIMEOUT)
    assert crashing.uploaded_images(session.id) == 1
    crashing.db.close()

    restarted = MirrorHarness(tmp_path / "booth", sim.base_url).start()
    try:
        wait_for(lambda: restarted.cloud(session.id) is not None, TIMEOUT)
        stats = sim.stats()
        # 4 photos; the second one's answer was lost in the crash, so the cloud holds it twice.
        assert stats["uploads"] == 4 + 1
        assert stats["sessions"] == 1
        assert restarted.queue.sends(session.id) == {"uploads": 5, "process": 1}
    finally:
        restarted.close()


def test_missing_photo_dead_letters_that_session_only(harness: MirrorHarness, sim: CloudSim) -> None:
    broken = harness.session(imei(80))
    fine = harness.session(imei(81))
    first = harness.store.images(broken.id)[0]
    (harness.store.images_root / first.path).unlink()
    harness.start()
    wait_for(lambda: harness.cloud(fine.id) is not None, TIMEOUT)
    dead = harness.events_of("dead_lettered")
    assert [e["session_id"] for e in dead] == [broken.id]
    assert "no longer on disk" in dead[0]["error"]


def test_retention_keeps_images_of_sessions_not_yet_mirrored(harness: MirrorHarness, sim: CloudSim) -> None:
    retention = Retention(harness.store, StorageConfig(), harness.events, harness.outbox, harness.store.journal)
    sim.stop_listening()
    waiting = harness.session(imei(90))
    far_future = time.time() + 10 * 365 * 86_400
    assert retention.sweep(now=far_future) == 0
    assert images_of(harness.db, waiting.id) == 3

    sim.start_listening()
    harness.start()
    wait_for(lambda: harness.cloud(waiting.id) is not None, TIMEOUT)
    assert retention.sweep(now=far_future) == 1
    assert harness.store.get(waiting.id) is None


def test_full_outbox_drops_the_oldest_with_an_event(tmp_path: Path, sim: CloudSim) -> None:
    h = MirrorHarness(tmp_path / "booth", sim.base_url, outbox_max_sessions=2)
    try:
        ids = [h.session(imei(n)).id for n in range(100, 103)]
        full = h.events_of("outbox_full")
        assert [e["dropped_session_ids"] for e in full] == [[ids[0]]]
        assert full[0]["policy"] == "drop-oldest"
        assert full[0]["outbox"] == "cloud"
        assert h.queue.pending_session_ids() == set(ids[1:])
        h.start()
        wait_for(lambda: all_mirrored(h, ids[1:]), TIMEOUT)
        assert h.cloud(ids[0]) is None
        assert sim.stats()["sessions"] == 2
        assert h.cloud_status()["dropped"] == 1
    finally:
        h.close()


def test_failed_sessions_are_not_mirrored(harness: MirrorHarness) -> None:
    record = harness.store.create(imei(110), "test")
    harness.store.finish(record.id, "failed", None, reason="capture failed")
    assert harness.queue.state_of(record.id) is None


def test_cloud_result_hook_runs_inside_the_storing_transaction(tmp_path: Path, sim: CloudSim) -> None:
    calls: list[tuple[str, bool, dict[str, Any]]] = []

    def hook(conn: sqlite3.Connection, session_id: str, payload: dict[str, Any]) -> None:
        stored = conn.execute("SELECT cloud_json FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
        calls.append((session_id, conn.in_transaction and stored is not None, payload))

    h = MirrorHarness(tmp_path / "booth", sim.base_url, on_cloud_result=hook).start()
    try:
        session = h.session(imei(120))
        wait_for(lambda: h.cloud(session.id) is not None, TIMEOUT)
        assert len(calls) == 1
        session_id, in_transaction, payload = calls[0]
        assert session_id == session.id
        assert in_transaction
        assert payload == h.cloud(session.id)
        assert ProcessResponse.model_validate(payload).imei == session.imei  # the cloud's answer as given
    finally:
        h.close()


def test_prefer_cloud_takes_the_clouds_scores_and_keeps_the_booths_retake_of_a_section() -> None:
    blurred = BoothSectionAnalysis(
        score=0, issues=[], recommendations=["retake front: photo blurred"], status="retake", reason="photo blurred"
    )
    booth = BoothProcessResponse(
        sessionId="s-1", imei=imei(140), images=[], status="retake", grade=None, reason="front: photo blurred",
        analysis={"front": blurred, "back": BoothSectionAnalysis(score=100, issues=[], recommendations=[])},
        model=ModelInfo(name="test", version="0", sha256="0" * 64, runtime="none"), timings_ms={"total": 1.0},
        booth_id="test-booth", time="2024-01-01T00:00:00.000Z",
    ).model_dump(mode="json")  # fmt: skip
    cloud = {"sessionId": "c-1", "analysis": {s: {"score": 85, "issues": ["dust"], "recommendations": []}
                                              for s in ("front", "back")}}  # fmt: skip
    answer = BoothProcessResponse.model_validate(with_cloud_analysis(booth, cloud))
    front, back = answer.analysis["front"], answer.analysis["back"]
    assert (front.status, front.reason, front.score, front.issues) == ("retake", "photo blurred", 85, ["dust"])
    assert (back.status, back.score) == ("graded", 85)
    assert (answer.status, answer.grade) == ("retake", None)


def test_wait_for_cloud_gives_the_cloud_answer_or_none_in_time(tmp_path: Path, sim: CloudSim) -> None:
    h = MirrorHarness(tmp_path / "booth", sim.base_url, mode="prefer-cloud").start()
    try:
        session = h.session(imei(130))
        answer = h.mirror.wait_for_cloud(session.id, TIMEOUT)
        assert answer is not None
        assert answer["sessionId"]
        assert set(answer["analysis"]) == {"front", "back"}

        sim.stop_listening()
        late = h.session(imei(131))
        assert h.mirror.wait_for_cloud(late.id, 1.0) is None
    finally:
        h.close()


def test_mode_off_sends_nothing(tmp_path: Path, sim: CloudSim) -> None:
    h = MirrorHarness(tmp_path / "booth", sim.base_url, mode="off").start()
    try:
        session = h.session(imei(140))
        assert h.queue.state_of(session.id) is None
        assert h.cloud_status() == {"mode": "off", "reason": "mode = off"}
        assert h.mirror.wait_for_cloud(session.id, 0.1) is None
        assert sim.stats()["requests"] == {}
    finally:
        h.close()


def test_a_process_call_gets_a_read_timeout_that_fits_the_session(tmp_path: Path, sim: CloudSim) -> None:
    # 1 s alone would time out; 3 images at 2 s each give the cloud 7 s, and it answers in 3.
    harness = MirrorHarness(tmp_path / "booth", sim.base_url, read_timeout_s=1.0, read_timeout_per_image_s=2.0)
    try:
        session = harness.session(imei(40))
        sim.add_fault(kind="slow", delay_s=3.0, endpoint="process", count=1)
        harness.start()
        wait_for(lambda: harness.cloud(session.id) is not None, TIMEOUT)
        assert sim.stats()["requests"]["process"] == 1
        assert harness.queue.sends(session.id)["process"] == 1
        assert harness.cloud_status()["process_resends"] == 0
    finally:
        harness.close()


def test_a_process_call_that_never_answers_in_time_is_sent_a_capped_number_of_times(
    tmp_path: Path, sim: CloudSim
) -> None:
    harness = MirrorHarness(
        tmp_path / "booth", sim.base_url, read_timeout_s=1.0, read_timeout_per_image_s=0, read_timeout_per_mb_s=0
    )
    try:
        session = harness.session(imei(41))
        sim.add_fault(kind="slow", delay_s=4.0, endpoint="process", count=None)
        harness.start()
        wait_for(lambda: harness.queue.state_of(session.id) == "dead", TIMEOUT)
        assert sim.stats()["requests"]["process"] == 3
        assert harness.queue.sends(session.id)["process"] == 3
        wait_for(lambda: harness.cloud_status()["process_resends"] == 2, TIMEOUT)
        metrics = ApiMetrics(harness.db)
        metrics.read_state_from(harness.store, harness.status)
        assert "edge_grader_cloud_process_resends 2.0" in generate_latest(metrics.registry).decode()
        [dead] = harness.events_of("dead_lettered")
        assert dead["error"] == (
            "process sent 3 times without an answer; not sent again, so the cloud holds no more copies of this session"
        )
        # Every unanswered call was charged to the session: its own backoff grew after each.
        attempts = harness.db.connection().execute(
            "SELECT attempts FROM outbox WHERE session_id = ?", (session.id,)
        ).fetchone()[0]
        assert attempts == 3
    finally:
        sim.clear_faults()
        harness.close()
