"""Topic names under ``<prefix>`` (``vision-grader/<booth_id>`` by default). No IMEI ever goes here."""

from __future__ import annotations

from dataclasses import dataclass

from edge.spool.sessions import SAFE_NAME


def session_suffix(session_id: str, cloud: bool = False) -> str:
    """``sessions/<id>`` (or ``.../cloud``), relative to the prefix; refuses ids that are not plain names."""
    if not SAFE_NAME.fullmatch(session_id):
        raise ValueError("session id must be a plain name (letters, digits, '-', '_', '.')")
    return f"sessions/{session_id}/cloud" if cloud else f"sessions/{session_id}"


@dataclass(frozen=True)
class Topics:
    prefix: str

    @classmethod
    def for_booth(cls, template: str, booth_id: str) -> Topics:
        return cls(template.replace("{booth_id}", booth_id))

    def of(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    @property
    def available(self) -> str:
        return self.of("available")

    @property
    def state(self) -> str:
        return self.of("state")

    @property
    def events(self) -> str:
        return self.of("events")

    @property
    def cmd_trigger(self) -> str:
        return self.of("cmd/trigger")

    @property
    def cmd_arm(self) -> str:
        return self.of("cmd/arm")
