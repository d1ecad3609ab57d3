"""Why the booth refuses a trigger; every trigger path (GPIO, CLI, HTTP, MQTT) answers with these."""

from __future__ import annotations

from typing import Literal

RefusalCode = Literal["invalid_imei", "busy", "disk_low", "stopping", "no_imei"]


class TriggerRefusedError(Exception):
    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SessionFailedError(Exception):
    """A session that was stored but could not be graded; ``reason`` says why."""

    def __init__(self, session_id: str, reason: str) -> None:
        super().__init__(f"session {session_id} failed: {reason}")
        self.session_id = session_id
        self.reason = reason

