"""The camera interface and the factory that picks a backend from the config."""

from __future__ import annotations

from typing import Protocol

from edge.capture.frames import Frame
from edge.config.capture import CameraConfig, OpenCVCamera, Picamera2Camera, ReplayCamera


class Camera(Protocol):
    name: str

    def open(self) -> None:
        """Acquire the device and get it ready for shots (may take seconds)."""

    def capture(self, section: str) -> Frame:
        """One shot in memory; raises CaptureError."""

    def close(self) -> None: ...


def make_camera(name: str, config: CameraConfig) -> Camera:
    if isinstance(config, ReplayCamera):
        from edge.capture.replay_camera import ReplayCameraBackend

        return ReplayCameraBackend(name, config)
    if isinstance(config, OpenCVCamera):
        from edge.capture.opencv_camera import OpenCVCameraBackend

        return OpenCVCameraBackend(name, config)
    if isinstance(config, Picamera2Camera):
        from edge.capture.picamera2_camera import Picamera2Backend

        return Picamera2Backend(name, config)
    raise TypeError(f"unknown camera backend for {name}")
