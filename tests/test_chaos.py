"""Issue 12: the reduced chaos run (bench/chaos.py) against the real daemon, broker and cloud simulator.

One run per module (about 3 minutes): SIGKILLs at every phase, a broker + cloud outage with a kill
during the backlog flush, a full disk on a small tmpfs, a slow and a dropping cloud, hostile input over
MQTT and HTTP, schemathesis against the live OpenAPI, 16 concurrent maximal uploads. The tests below
read its report; busy answers (503 + Retry-After) are retried and counted apart, never as a 5xx.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import chaos

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]  # the one run is set up inside the first test
FORM = chaos.Form()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> chaos.Report:
    root: Path = tmp_path_factory.mktemp("chaos")
    return chaos.run(FORM, root, log=lambda _line: None)


def needs_tmpfs(report: chaos.Report) -> None:
    if not report.storage.startswith("tmpfs"):
        pytest.skip(f"full disk not run: {report.storage}")


# -- invariants the daemon meets --------------------------------------------------------------------------


def test_every_step_ran_to_its_end(report: chaos.Report) -> None:
    assert report.step_errors == {}


def test_no_session_is_lost_across_kills_outage_and_faults(report: chaos.Report) -> None:
    assert len(report.triggered) >= FORM.sessions + FORM.backlog
    assert report.lost == []


def test_integrity_check_is_ok_after_every_kill(report: chaos.Report) -> None:
    # The random ones, the directed one(s) after the overlays, the one during the backlog flush.
    assert len(report.kills) >= FORM.kills + 2
    assert [integrity for _, integrity in report.kills] == ["ok"] * len(report.kills)


def test_outage_backlog_drains_in_the_order_it_was_produced(report: chaos.Report) -> None:
    assert report.backlog_sessions == FORM.backlog
    assert report.outage_order_ok


def test_slow_cloud_resends_back_off_and_every_cloud_copy_is_counted(report: chaos.Report) -> None:
    # Issue 12 item 3 as seen from outside: timeouts back off and each resend is counted. Not covered
    # here: a read timeout scaled to the request, and a cap on resends of one process call.
    assert report.slow_cloud["ok"], report.slow_cloud["summary"]
    assert report.cloud_duplicates <= report.cloud_process_sends_counted


def test_dropping_cloud_still_mirrors_the_session(report: chaos.Report) -> None:
    assert report.drop_cloud["ok"], report.drop_cloud


def test_no_orphan_rows(report: chaos.Report) -> None:
    assert report.orphan_rows == []


def test_no_5xx_outside_the_full_disk(report: chaos.Report) -> None:
    assert [e for e in report.server_errors if not e.startswith(chaos.FULL_DISK_TAG)] == []


def test_schemathesis_finds_no_server_error(report: chaos.Report) -> None:
    assert report.schemathesis["cases"] >= FORM.schemathesis_cases * 0.9
    assert report.schemathesis["failures"] == 0, report.schemathesis["examples"]


@pytest.mark.parametrize(
    "case",
    [
        "mqtt bad IMEIs",
        "http bad IMEI",
        "http unknown field",
        "http JSON nested 2000 deep",
        "http oversize JSON",
        "http oversize upload",
        "http non-image upload",
        # issue 12's MQTT trigger edge cases, and the same request_id over HTTP
        "mqtt retained trigger",
        "mqtt duplicate request_id",
        "http duplicate request_id",
        "mqtt unknown field",
        "mqtt JSON nested 2000 deep",
    ],
)
def test_hostile_input_is_refused_in_the_contract_form(report: chaos.Report, case: str) -> None:
    assert report.hostile[case]["ok"], report.hostile[case]


# -- issue 12's failures, fixed -------------------------------------------------------------------------------


def test_full_disk_at_every_phase_ends_the_session_and_the_booth_recovers(report: chaos.Report) -> None:
    needs_tmpfs(report)
    assert len(report.disk) == len(FORM.disk_delays_s)
    assert [d for d in report.disk if not d["recovered"]] == []


def test_uploads_on_a_full_disk_answer_507(report: chaos.Report) -> None:
    needs_tmpfs(report)
    assert report.disk_uploads["ok"], report.disk_uploads


def test_kill_during_backlog_flush_resends_at_most_one(report: chaos.Report) -> None:
    if not report.backlog_kill_mid_flush and report.backlog_messages <= report.backlog_sessions + 1:
        pytest.skip("the kill landed after the flush was recorded: this run cannot judge it")
    assert report.backlog_unrecorded <= 1  # only the result in flight may lack its recorded PUBACK
    assert report.backlog_messages <= report.backlog_sessions + 1


def test_concurrent_maximal_uploads_stay_under_the_memory_limit(report: chaos.Report) -> None:
    assert report.uploads["count"] == 16
    assert report.peak_rss_mb < chaos.UNIT_MEMORY_MAX_MB


def test_kill_after_the_overlays_leaves_no_stale_overlay(report: chaos.Report) -> None:
    if report.overlay_kill_session is None:
        pytest.skip("no kill landed between the stored overlays and the result in this run")
    assert report.overlay_kill_session not in report.stale_overlays


def test_trigger_wait_reports_a_dying_daemon_with_the_session_id(report: chaos.Report) -> None:
    assert report.trigger_wait["ok"], report.trigger_wait


def test_process_without_key_answers_401(report: chaos.Report) -> None:
    assert report.hostile["http process without key (401)"]["ok"], report.hostile["http process without key (401)"]
