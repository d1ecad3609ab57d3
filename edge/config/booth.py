"""Who this booth is and where it keeps its state."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SECTIONS = ("front", "back", "left", "right", "top", "bottom")
BOOTH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SECTION_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


class BoothConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=BOOTH_ID_PATTERN, description="unique booth id; used in MQTT topics")
    sections: list[str] = Field(default=list(DEFAULT_SECTIONS), min_length=1)
    state_dir: Path = Field(
        default=Path("/var/lib/edge-grader"), description="spool database and images; StateDirectory="
    )
    imei_check: Literal["luhn", "digits"] = Field(
        default="luhn",
        description="luhn: 15 digits with a valid check digit; digits: any 15 digits (kiosk test rigs only)",
    )
    max_sessions: int = Field(
        default=2,
        ge=1,
        le=64,
        description="sessions queued or grading at once (every trigger and /api/process counts); "
        "past it the booth answers busy (HTTP 503 with Retry-After, MQTT code busy)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def model_post_init(self, __context: object) -> None:
        import re

        for section in self.sections:
            if not re.fullmatch(SECTION_PATTERN, section):
                raise ValueError(f"section {section!r} must be lower-case letters, digits, '-' or '_'")
        if len(set(self.sections)) != len(self.sections):
            raise ValueError("sections must not repeat")
