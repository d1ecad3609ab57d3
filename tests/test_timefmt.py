from __future__ import annotations

import logging
import re
import sys

from edge.daemon.logs import LineFormatter
from edge.daemon.technician import LastError
from edge.events import EventBus
from edge.imei import mask_imei
from edge.timefmt import utc_iso
from tests.booth_support import VALID_IMEI

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_published_times_are_utc_to_the_millisecond_with_z() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso(1795512075.1234) == "2026-11-24T09:21:15.123Z"
    assert utc_iso().endswith("Z") and len(utc_iso()) == 24


def test_events_carry_the_same_time_format_as_results_and_state() -> None:
    heard: list[dict] = []
    bus = EventBus("b")
    bus.subscribe(heard.append)
    bus.emit("graded", session_id="s")
    assert ISO_UTC.fullmatch(heard[0]["time"]), heard[0]["time"]


def test_the_daemon_log_is_one_line_per_event_with_its_traceback_and_every_imei_masked() -> None:
    formatter = LineFormatter("%(message)s")
    try:
        raise FileExistsError(17, "File exists", f"/var/lib/edge-grader/images/{VALID_IMEI}/front")
    except FileExistsError:
        record = logging.LogRecord("edge", logging.ERROR, __file__, 1, "session %s", ("s-1",), sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line
    assert line.startswith("session s-1 | Traceback (most recent call last): | ")
    masked = f"/var/lib/edge-grader/images/{mask_imei(VALID_IMEI)}/front"
    assert line.endswith(f"FileExistsError: [Errno 17] File exists: '{masked}'")
    assert VALID_IMEI not in line


def test_the_technicians_last_error_is_the_journals_line_with_every_imei_masked() -> None:
    last = LastError()
    logger = logging.getLogger("edge.test-last-error")
    logger.addHandler(last)
    try:
        logger.warning("session s-0 for %s: not an error", VALID_IMEI)
        assert last.last is None
        logger.error("session s-1 for %s could not be linked", VALID_IMEI)
    finally:
        logger.removeHandler(last)
    assert last.last is not None
    assert last.last["message"] == f"session s-1 for {mask_imei(VALID_IMEI)} could not be linked"
