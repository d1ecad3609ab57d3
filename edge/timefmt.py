"""One time format for everything the booth publishes: UTC ISO 8601 to the millisecond, with Z."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utc_iso(ts: float | None = None) -> str:
    """``2026-11-24T10:16:57.123Z`` for a Unix time (now when omitted)."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
