"""What starts a grading session: GPIO inputs and the local control socket."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class GpioTriggerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pin: str | int = Field(description="gpiozero pin name, e.g. 17 or 'GPIO17' or 'BOARD11'")
    pull_up: bool = True
    bounce_s: float = Field(default=0.05, ge=0, le=2)


class TriggersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    control_socket: Path | None = Field(
        default=None,
        description="unix socket for `edge-grader trigger`; default <state_dir>/control.sock",
    )
    button: GpioTriggerConfig | None = None
    drawer: GpioTriggerConfig | None = None
    # A GPIO input carries no IMEI: it starts a session for the IMEI the kiosk armed last
    # (`edge-grader arm`, POST /api/arm or MQTT <prefix>/cmd/arm), and is refused when none is armed.
    armed_imei_ttl_s: float = Field(default=300.0, gt=0)
