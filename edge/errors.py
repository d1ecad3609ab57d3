"""Errors shared by the daemon's parts; below everything that raises or answers them.

Why the booth refuses a trigger: every trigger path (GPIO, CLI, HTTP, MQTT) answers with these.
"""

from __future__ import annotations

from typing import Literal

RefusalCode = Literal["invalid_imei", "busy", "disk_low", "stopping", "no_imei", "request_conflict"]


class TriggerRefusedError(Exception):
    """``retry_after_s``: the refusal is temporary (the session queue is full); try again then."""

    def __init__(self, code: RefusalCode, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class SessionFailedError(Exception):
    """A session that was stored but could not be graded; ``reason`` says why."""

    def __init__(self, session_id: str, reason: str) -> None:
        super().__init__(f"session {session_id} failed: {reason}")
        self.session_id = session_id
        self.reason = reason

