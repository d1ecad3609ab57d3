"""Shapes of the booth's own endpoints; the contract's shapes live in edge.contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.contract import BoothProcessResponse, Grade
from edge.spool.sessions import ImageKind, Status


class TriggerRequest(BaseModel):
    """``POST /api/sessions``: photograph the device in the booth for this IMEI."""

    model_config = ConfigDict(extra="forbid")

    imei: str = Field(min_length=1, max_length=32, description="15 digits with a Luhn check digit")
    key: str | None = Field(
        default=None, min_length=1, max_length=256, description="a local API key; required when keys are set"
    )
    request_id: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="echoed in session events"
    )


class TriggerResponse(BaseModel):
    success: Literal[True] = True
    sessionId: str
    status: Status


class ArmRequest(BaseModel):
    """``POST /api/arm``: the IMEI the next GPIO button or drawer trigger grades."""

    model_config = ConfigDict(extra="forbid")

    imei: str = Field(min_length=1, max_length=32, description="15 digits with a Luhn check digit")
    key: str | None = Field(
        default=None, min_length=1, max_length=256, description="a local API key; required when keys are set"
    )


class ArmResponse(BaseModel):
    success: Literal[True] = True
    armed_for_s: float = Field(description="a GPIO trigger within this many seconds grades this IMEI")


class SessionImage(BaseModel):
    url: str
    section: str
    shot: int
    kind: ImageKind
    path: str
    size: int = Field(ge=0)


class SessionView(BaseModel):
    """One session as stored: the booth's answer (``result``) once finished, the cloud's beside it."""

    sessionId: str
    imei: str
    source: str
    request_id: str | None
    status: Status
    reason: str | None
    grade: str | None
    provisional_grade: str | None = Field(
        default=None, description="status review: the grade the booth would give, until a technician decides"
    )
    reviewed_by: str | None = Field(default=None, description="the technician who decided a review")
    review_note: str | None = None
    reviewed_at: float | None = None
    created_at: float = Field(description="seconds since the epoch")
    updated_at: float
    result: BoothProcessResponse | None
    cloud: dict[str, Any] | None
    images: list[SessionImage]
    delivery: dict[str, str | None] = Field(
        default_factory=dict,
        description="per outbox (mqtt, cloud): pending, done, dead or dropped; null when not queued there",
    )


class SessionPage(BaseModel):
    sessions: list[SessionView]
    next_before: float | None = Field(
        description="pass as `before` for the next (older) page; null at the end"
    )


class Health(BaseModel):
    """Liveness: ``ok`` while every worker of the daemon is alive, else ``down`` naming them;
    ``degraded`` when all are alive but the booth cannot take sessions (``problems`` says why)."""

    status: Literal["ok", "degraded", "down"] = "ok"
    down: list[str] = Field(
        default_factory=list, description="the workers that are not alive, and cameras wedged in a call (camera-<name>)"
    )
    problems: list[str] = Field(
        default_factory=list, description="why the booth refuses new sessions while alive (degraded), e.g. a full disk"
    )
    booth_id: str
    components: dict[str, Any] = Field(
        description="cameras, model, broker, cloud, disk, activity, workers (alive or down): "
        "the StatusBoard's values, null when not reported"
    )


class KioskConfig(BaseModel):
    """What the booth's screen needs to check an IMEI as the booth does and to name the sections."""

    booth_id: str
    sections: list[str]
    imei_check: Literal["luhn", "digits"]


class KioskTrigger(BaseModel):
    """``POST /api/kiosk/sessions``: the booth's own screen starts a session (no key from loopback)."""

    model_config = ConfigDict(extra="forbid")

    imei: str = Field(min_length=1, max_length=32)
    key: str | None = Field(default=None, min_length=1, max_length=256)


class ReviewDecision(BaseModel):
    """A technician's grade for a session in review: the provisional one confirmed, or another."""

    model_config = ConfigDict(extra="forbid")

    grade: Grade
    technician: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=500)


class TechState(BaseModel):
    booth_id: str
    activity: str | None
    cameras: dict[str, str] | None
    model: dict[str, Any] | None
    broker: dict[str, bool]
    cloud: dict[str, Any] | None
    outbox_depth: dict[str, int]
    disk_free_mb: float | None
    uptime_s: int
    last_error: dict[str, Any] | None


class CameraTestShot(BaseModel):
    camera: str
    ok: bool
    verdict: str
    width: int
    height: int
    preview: str = Field(description="the photo, downscaled, as a data: URL")


class CalibrateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(default=False, description="store even if something phone-shaped is in view")


class CalibrateResponse(BaseModel):
    success: Literal[True] = True
    camera: str
    stored: str
