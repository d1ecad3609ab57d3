"""The defect model and the grading rules built on its detections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "booth-defects.tflite"


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(default=DEFAULT_MODEL, description=".tflite file; its metadata .json lies beside it")
    runtime: Literal["auto", "litert", "tflite_runtime"] = Field(
        default="auto", description="auto tries ai_edge_litert first, then tflite_runtime"
    )
    threads: int = Field(default=3, ge=1, le=8, description="interpreter threads (3 leaves a core on a Pi 4)")
    thresholds: dict[Literal["scratch", "crack", "chip", "dirt", "crack_confirm"], float] = Field(
        default_factory=dict,
        description="per-class probability thresholds overriding the metadata's; a crack found with less "
        "evidence (its confidence, edge.grade.evidence) than crack_confirm sends the session to a technician's review",
    )

    @model_validator(mode="after")
    def _thresholds_are_probabilities(self) -> ModelConfig:
        bad = {k: v for k, v in self.thresholds.items() if not 0 < v < 1}
        if bad:
            raise ValueError(f"model.thresholds: {bad} must lie strictly between 0 and 1")
        return self


class GradingConfig(BaseModel):
    """Quality gate, measurement and grading rules; the defaults follow GRADING.md."""

    model_config = ConfigDict(extra="forbid")

    # Decoding and locating
    decode_long_side: int = Field(
        default=2000, ge=640, le=8192, description="decode at the smallest JPEG scale keeping at least this long side"
    )
    min_device_area: float = Field(
        default=0.03, gt=0, lt=1, description="smallest device rectangle, as a fraction of the frame"
    )
    device_aspect: tuple[float, float] = Field(
        default=(1.6, 2.6), description="accepted long/short side ratio of the device rectangle"
    )
    nominal_device_length_mm: float = Field(
        default=150.0, gt=50, lt=400, description="device length assumed when the camera has no mm_per_px"
    )
    prepare_threads: int = Field(
        default=2,
        ge=1,
        le=4,
        description="photos of a session decoded, located and warped at once, beside the one in the model",
    )

    # Quality gate
    min_sharpness: float = Field(
        default=1.5,
        ge=0,
        description="least sharpness: variance of Laplacian on the device's edges, normalised",
    )
    max_highlight_fraction: float = Field(
        default=0.2, gt=0, le=1, description="most of the device that may be clipped white (>= 250)"
    )
    max_shadow_fraction: float = Field(
        default=0.9, gt=0, le=1, description="most of the frame that may be clipped black (<= 5)"
    )
    min_frame_brightness: float = Field(default=12.0, ge=0, le=255, description="least mean grey of the whole frame")

    # Measuring defects
    min_defect_pixels: int = Field(
        default=6, ge=0, description="pixels that must stand out for a scratch, crack or chip to count"
    )
    min_scratch_mm: float = Field(default=1.0, ge=0, description="shorter marks are specks, not scratches")
    min_dirt_area_mm2: float = Field(default=0.5, ge=0, description="dirt smaller than this is ignored")
    deep_scratch_width_mm: float = Field(
        default=0.35,
        gt=0,
        description="a scratch at least this wide (at half its peak contrast) counts as deep (catches a nail)",
    )
    chip_max_edge_distance_mm: float = Field(
        default=4.0, ge=0, description="a chip or dent is on the outline: further inside, it is ignored"
    )
    dirt_zone_probability: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="a line mostly where dirt is at least this likely is the rim of a drop or smear, not damage",
    )
    crack_edge_distance_mm: float = Field(
        default=3.0,
        ge=0,
        description="a smooth unbranched line ending further than this from the outline is a scratch, not a crack",
    )
    min_crack_evidence: float = Field(
        default=3.5,
        ge=0,
        description="a crack with less evidence mass than this (saturated cells crossed by a thin line, "
        "edge.grade.evidence) on a lit screen is screen content, not a crack",
    )
    lit_brightness: float = Field(
        default=60.0,
        ge=0,
        le=255,
        description="median grey under a crack from which the glass is lit (content shows), for min_crack_evidence",
    )
    merge_distance_mm: float = Field(
        default=4.0, ge=0, description="defects of one kind closer than this (also across shots) are one defect"
    )
    shattered_crack_count: int = Field(default=3, ge=1, description="this many separate cracks on a face is shattered")
    shattered_area_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="boxes of two or more cracks covering this fraction of a face make it shattered",
    )

    # Score 0-100 per section: 100 minus penalties, never below 0
    penalty_light_scratch: float = Field(default=3.0, ge=0, description="score lost per light scratch")
    penalty_scratch_per_mm: float = Field(default=0.3, ge=0, description="score lost per mm of scratch length")
    penalty_deep_scratch: float = Field(default=10.0, ge=0, description="score lost per deep scratch")
    penalty_chip: float = Field(default=8.0, ge=0, description="score lost per chip or dent")
    penalty_crack: float = Field(default=45.0, ge=0, description="score lost per crack")
    shattered_score: int = Field(default=5, ge=0, le=100, description="most a shattered face can score")

    # Grade rules per face (the device grade is the worst face)
    a_max_scratches: int = Field(default=2, ge=0, description="grade A: at most this many light scratches")
    a_max_scratch_mm: float = Field(default=3.0, ge=0, description="grade A: none longer than this")
    b_max_scratches: int = Field(default=10, ge=0, description="grade B: at most this many light scratches")
    b_max_scratch_mm: float = Field(default=10.0, ge=0, description="grade B: none longer than this")
    b_max_chips: int = Field(default=2, ge=0, description="grade B: at most this many chips/dents (A allows none)")
    c_max_deep_scratches: int = Field(
        default=10, ge=0, description="grade C: at most this many deep scratches; more is D"
    )

    # Overlay
    overlay_long_side: int = Field(default=1600, ge=320, le=8192, description="long side of the overlay JPEG")
    overlay_quality: int = Field(default=85, ge=30, le=100, description="JPEG quality of the overlay")

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> GradingConfig:
        lo, hi = self.device_aspect
        if not 1 <= lo < hi:
            raise ValueError(f"grading.device_aspect: {self.device_aspect} must be (low, high) with 1 <= low < high")
        if self.a_max_scratches > self.b_max_scratches or self.a_max_scratch_mm > self.b_max_scratch_mm:
            raise ValueError("grading: the grade A scratch limits must not exceed the grade B limits")
        return self
