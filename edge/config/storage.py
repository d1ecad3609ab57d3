"""Retention and disk limits for the spool."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Room between the emergency and the refusal of sessions where a config leaves none: about 17
# sessions of 12 MP photos, more than a sweep interval brings.
EMERGENCY_HEADROOM_MB = 256


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention_days: float = Field(default=30.0, gt=0, description="delete delivered sessions older than this")
    quota_mb: int = Field(default=4096, ge=64, description="images on disk above this: oldest delivered go first")
    min_free_mb: int = Field(default=512, ge=16, description="below this much free disk the booth refuses new sessions")
    reserve_mb: int = Field(
        default=8,
        ge=1,
        description="disk kept back in a file and given up when the disk fills, so failures can still be recorded",
    )
    emergency_free_mb: int = Field(
        default=1024,
        ge=8,
        description="below this free disk (kept above min_free_mb) uploads stop, and unprocessed uploads go, then"
        " delivered sessions early, then images of undelivered sessions and of reviews, oldest first (logged)",
    )
    upload_ttl_h: float = Field(
        default=24.0, gt=0, description="images uploaded through /api/upload but never processed are kept this long"
    )
    sweep_interval_s: float = Field(default=600.0, gt=0)
    jpeg_quality: int = Field(default=92, ge=50, le=100)
    jpeg_threads: int = Field(
        default=2, ge=1, le=8, description="cores encoding one camera photo's JPEG, in horizontal bands"
    )

    @property
    def emergency_level_mb(self) -> int:
        """Free disk under which the emergency starts: ``emergency_free_mb``, or
        ``EMERGENCY_HEADROOM_MB`` above ``min_free_mb`` where it is set at or under it (as configs
        written before 2026-12 have it).

        Under ``min_free_mb`` the booth takes no sessions, so its own photos stop filling the disk
        there: an emergency set lower would never come, and a booth offline for weeks would refuse
        every customer until the network returned. Raised rather than refused, so an installed
        booth's config keeps working after an upgrade (the daemon says so at start).
        """
        if self.emergency_free_mb > self.min_free_mb:
            return self.emergency_free_mb
        return self.min_free_mb + EMERGENCY_HEADROOM_MB
