"""The Vision Grader cloud mirror: where, with which key, and how patiently."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.config.secrets import Secret

DEFAULT_CLOUD_URL = "https://vision-grader.pandas.io"


class CloudConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["mirror", "off", "prefer-cloud"] = Field(
        default="mirror",
        description="mirror: booth answers at once, the cloud's answer follows; off: nothing is sent; "
        "prefer-cloud: /api/process waits up to prefer_cloud_wait_s for the cloud's analysis",
    )
    base_url: str = Field(default=DEFAULT_CLOUD_URL, description="the cloud's base URL (http:// or https://)")
    api_key: Secret | None = Field(
        default=None,
        description="the contract's `key`; inline, \"env:NAME\" or \"credential:NAME\". "
        "Without a key the mirror stays off (logged at start)",
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120, description="TCP/TLS connect timeout")
    read_timeout_s: float = Field(default=30.0, gt=0, le=600, description="wait for each chunk of an answer")
    read_timeout_per_image_s: float = Field(
        default=5.0, ge=0, le=600, description="process: the read timeout grows by this per image (each is graded)"
    )
    read_timeout_per_mb_s: float = Field(
        default=2.0, ge=0, le=600, description="process: the read timeout grows by this per MB of the session's images"
    )
    process_max_sends: int = Field(
        default=3,
        ge=1,
        le=100,
        description="process calls sent for one session without an answer at most; then it is dead-lettered "
        "(each unanswered call may have been stored by the cloud: a copy)",
    )
    write_timeout_s: float = Field(default=60.0, gt=0, le=600, description="wait for each chunk of an upload")
    pool_timeout_s: float = Field(default=5.0, gt=0, le=120, description="wait for a free pooled connection")
    connect_retries: int = Field(
        default=1, ge=0, le=5, description="immediate reconnects when a connect fails (nothing was sent yet)"
    )
    backoff_base_s: float = Field(default=2.0, gt=0, le=600, description="first retry delay after a failure")
    backoff_cap_s: float = Field(
        default=300.0, gt=0, le=3600, description="longest retry delay, before jitter (about 5 minutes)"
    )
    retry_after_max_s: float = Field(
        default=3600.0, gt=0, le=86_400, description="longest Retry-After (429/503) honoured as given"
    )
    prefer_cloud_wait_s: float = Field(
        default=15.0, ge=0, le=300, description="prefer-cloud: how long /api/process waits for the cloud"
    )
    outbox_max_sessions: int = Field(
        default=5000, ge=1, le=1_000_000, description="sessions waiting for the cloud at most"
    )
    outbox_full_policy: Literal["drop-oldest", "drop-newest"] = Field(
        default="drop-oldest",
        description="when the outbox is full: give up the oldest waiting session, or the new one "
        "(either way an `outbox_full` event names it and its images become deletable)",
    )

    outbox_keep_done_days: float = Field(
        default=30, ge=0, description="mirrored, dropped and dead-lettered outbox rows are kept this long"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) < len("http://x"):
            raise ValueError("must be an http:// or https:// URL, e.g. https://vision-grader.pandas.io")
        return value.rstrip("/")
