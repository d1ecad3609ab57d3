"""MQTT connection, topics, the durable outbox and Home Assistant discovery."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.config.secrets import Secret

TOPIC_FORBIDDEN = ("#", "+", "\x00")


class MqttTlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(default=False, description="skip host name check (test brokers only)")

    @model_validator(mode="after")
    def _key_with_cert(self) -> MqttTlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate) too")
        return self


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, description="default edge-grader-<booth id>")
    username: str | None = None
    password: Secret | None = None
    tls: MqttTlsConfig | None = None
    topic_prefix: str = Field(default="vision-grader/{booth_id}")
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    # Reconnect: paho doubles the delay from min to max after every failed attempt.
    reconnect_min_s: int = Field(default=1, ge=1, le=3600)
    reconnect_max_s: int = Field(default=60, ge=1, le=3600)
    # While the broker is away: one warning, then one reminder every this many seconds.
    outage_reminder_s: float = Field(default=300, ge=1)

    # Memory bounds: results handed to paho at once (awaiting PUBACK), and paho's whole queue
    # (results, events, state, command answers). Past that, results wait in the on-disk outbox.
    # A kill re-sends at most max_inflight results (their PUBACKs not yet recorded): 1 by default.
    max_inflight: int = Field(default=1, ge=1, le=1000)
    max_queued: int = Field(default=200, ge=1, le=100_000)

    # Durable outbox (SQLite): undelivered results kept on disk at most; what happens when full.
    outbox_max_rows: int = Field(default=10_000, ge=1)
    outbox_full_policy: Literal["drop-oldest", "drop-newest"] = Field(
        default="drop-oldest",
        description="drop-oldest: oldest undelivered result makes room; drop-newest: the new one is not queued",
    )
    outbox_keep_delivered_days: float = Field(default=7, ge=0)
    # A result the broker refuses waits (with the results behind it, to keep their order): capped
    # exponential backoff with jitter from retry_base_s to retry_cap_s.
    retry_base_s: float = Field(default=5.0, gt=0, le=3600)
    retry_cap_s: float = Field(default=300.0, gt=0, le=86_400)
    # A PUBACK that never comes frees its in-flight slot after this long; the result is sent again.
    inflight_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    state_min_interval_s: float = Field(default=1.0, ge=0, description="state republished at most this often")

    commands_enabled: bool = Field(default=True, description="accept cmd/trigger")
    ha_discovery: bool = Field(default=False, description="publish Home Assistant discovery configs")
    ha_discovery_prefix: str = "homeassistant"

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        problems = []
        if self.reconnect_max_s < self.reconnect_min_s:
            problems.append("reconnect_max_s must be >= reconnect_min_s")
        if self.max_queued <= self.max_inflight:
            problems.append("max_queued must be larger than max_inflight (room for state, events, answers)")
        for name in ("topic_prefix", "ha_discovery_prefix"):
            value = getattr(self, name)
            if not value or value.startswith("/") or value.endswith("/") or "//" in value:
                problems.append(f"{name} must be non-empty topic levels without leading/trailing '/'")
            if any(ch in value for ch in TOPIC_FORBIDDEN):
                problems.append(f"{name} must not contain MQTT wildcards '#' or '+'")
        if problems:
            raise ValueError("; ".join(problems))
        return self
