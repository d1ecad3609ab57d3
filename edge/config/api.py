"""The local HTTP API: the Vision Grader contract served by the booth."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edge.config.secrets import Secret


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="serve the local API inside the daemon")
    host: str = Field(
        default="127.0.0.1",
        description="bind address; anything but loopback logs a warning unless `keys` are set",
    )
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port; 0 picks a free one (tests)")
    keys: list[Secret] = Field(
        default_factory=list,
        description="accepted `key` values of /api/process and POST /api/sessions; empty accepts any key",
    )
    technician_keys: list[Secret] = Field(
        default_factory=list,
        description="keys of the technician's view and /api/tech routes, apart from `keys`, which client software"
        " holds; empty: no technician view",
    )
    max_upload_mb: float = Field(
        default=25.0, gt=0, le=200, description="largest image /api/upload takes (413)"
    )
    max_upload_megapixels: float = Field(
        default=64.0, gt=0, le=400, description="largest image size in pixels /api/upload decodes (413)"
    )
    max_concurrent_decodes: int = Field(
        default=2,
        ge=1,
        le=16,
        description="uploads read, checked and stored at once (each holds up to max_upload_mb of body and about "
        "max_upload_megapixels MB decoded); the rest wait a moment, then get 503 with Retry-After",
    )
    max_json_kb: int = Field(
        default=256, ge=4, le=16384, description="largest JSON body any route takes (413)"
    )
    public_base_url: str | None = Field(
        default=None,
        description="base of the image `url`s the booth issues, e.g. http://booth-7.local:8080; "
        "default: the scheme and host the client used",
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
    )
    sessions_page_max: int = Field(
        default=200, ge=1, le=10000, description="largest `limit` of GET /api/sessions"
    )
