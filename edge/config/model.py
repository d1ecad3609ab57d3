"""The defect model and the grading rules built on its detections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "booth-defects.tflite"


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(default=DEFAULT_MODEL, description=".tflite file; its metadata .json lies beside it")
    runtime: Literal["auto", "litert", "tflite_runtime"] = "auto"
    threads: int = Field(default=3, ge=1, le=8, description="interpreter threads (3 leaves a core on a Pi 4)")


class GradingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
