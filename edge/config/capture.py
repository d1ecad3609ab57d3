"""Cameras and the capture rig: which camera sees which section, shots, lights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Camera(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mm_per_px: float | None = Field(
        default=None, gt=0, description="calibrated scale at the device plane; else the model's nominal size"
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="a shot that takes longer fails the session")


class _SizedCamera(_Camera):
    width: int | None = Field(
        default=None, gt=0, description="frame size the camera gives (its mm_per_px is measured at it), with height"
    )
    height: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _whole_size(self) -> _SizedCamera:
        # One of the two alone would be dropped without a word, and the camera run at another size.
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height are set together, or neither")
        return self

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) when configured."""
        return None if self.width is None or self.height is None else (self.width, self.height)


class Picamera2Camera(_SizedCamera):
    """``width``/``height`` unset: the sensor's full size."""

    backend: Literal["picamera2"]
    index: int = Field(default=0, ge=0, description="libcamera camera number")
    settle_frames: int = Field(default=10, ge=0, le=200, description="frames before exposure/AWB are locked")
    lock_exposure: bool = True
    lens_position: float | None = Field(
        default=None,
        ge=0,
        le=32,
        description="a focus lens (Camera Module 3) set and held here, in dioptres (1 / metres to the glass);"
        " libcamera leaves it at its default, focused far away, unless told",
    )


class OpenCVCamera(_SizedCamera):
    """``width``/``height`` unset: the device's own size; set, a camera that gives another is refused."""

    backend: Literal["opencv"]
    source: str | int = Field(description="V4L2 index (0), device path (/dev/video0) or stream URL")
    warmup_frames: int = Field(default=5, ge=0, le=100)


class ReplayCamera(_Camera):
    backend: Literal["replay"]
    folder: Path = Field(description="images served in name order; <folder>/<section>/ if it exists")
    loop: bool = True


CameraConfig = Annotated[Picamera2Camera | OpenCVCamera | ReplayCamera, Field(discriminator="backend")]


class LightConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pin: str | int
    active_high: bool = True
    settle_s: float = Field(default=0.05, ge=0, le=2, description="wait after switching on before the shot")


class SectionRig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camera: str = Field(description="name of a camera in [cameras]")
    shots: int = Field(default=1, ge=1, le=16)
    lights: list[str] = Field(default_factory=list, description="names of lights in [lights] on for each shot")


class RigConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sections: dict[str, SectionRig] = Field(min_length=1)
    session_timeout_s: float = Field(default=120.0, gt=0)
    wedged_camera_s: float = Field(
        default=300.0,
        gt=0,
        description="a camera stuck this long in one driver call stops the watchdog's pings: systemd restarts"
        " the daemon, which opens the camera afresh",
    )
