from __future__ import annotations

from edge.timefmt import utc_iso


def test_published_times_are_utc_to_the_millisecond_with_z() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso(1795512075.1234) == "2026-11-24T09:21:15.123Z"
    assert utc_iso().endswith("Z") and len(utc_iso()) == 24
