"""A faithful stand-in for the parts of picamera2's API the adapter calls.

Method names, arguments and return shapes follow the Picamera2 manual: ``Picamera2(camera_num)``,
``sensor_resolution``, ``create_still_configuration(main=..., buffer_count=...)``, ``configure``,
``start``, ``capture_metadata``, ``set_controls``, ``capture_request(flush=...)`` returning a
``CompletedRequest`` with ``make_array(name)`` and ``release()``, ``stop``, ``close``. It enforces
the same ordering rules (configure before start, release every request) so misuse fails here as it
would on a Pi.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np


class CompletedRequest:
    def __init__(self, camera: Picamera2, frame: np.ndarray) -> None:
        self._camera = camera
        self._frame = frame
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        if self.released:
            raise RuntimeError("request already released")
        if name != "main":
            raise KeyError(name)
        return self._frame.copy()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._camera.outstanding -= 1


class Picamera2:
    instances: ClassVar[list[Picamera2]] = []
    frame_source: Any = None  # callable () -> ndarray, set by the test

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.sensor_resolution = (4056, 3040)
        self.configured: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self.controls: dict[str, Any] = {}
        self.outstanding = 0
        self.flush_args: list[Any] = []
        self.metadata_calls = 0
        Picamera2.instances.append(self)

    def create_still_configuration(
        self, main: dict[str, Any] | None = None, buffer_count: int = 1, **kwargs: Any
    ) -> dict[str, Any]:
        main = {"format": "BGR888", "size": self.sensor_resolution, **(main or {})}
        return {"use_case": "still", "main": main, "buffer_count": buffer_count, **kwargs}

    def configure(self, config: dict[str, Any]) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        self.configured = config

    def start(self) -> None:
        if self.configured is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def capture_metadata(self) -> dict[str, Any]:
        self._require_running()
        self.metadata_calls += 1
        return {
            "ExposureTime": 8000 + self.metadata_calls,
            "AnalogueGain": 1.5,
            "ColourGains": (1.9, 1.6),
            "SensorTimestamp": self.metadata_calls,
        }

    def set_controls(self, controls: dict[str, Any]) -> None:
        self.controls.update(controls)

    def capture_request(self, flush: bool | int | None = None, wait: bool | None = None) -> CompletedRequest:
        self._require_running()
        buffers = self.configured["buffer_count"] if self.configured else 1
        if self.outstanding >= buffers:
            raise RuntimeError("all buffers held by unreleased requests: the camera would stall")
        self.flush_args.append(flush)
        width, height = self.configured["main"]["size"]
        frame = Picamera2.frame_source(width, height)
        self.outstanding += 1
        return CompletedRequest(self, frame)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.started = False
        self.closed = True

    def _require_running(self) -> None:
        if not self.started:
            raise RuntimeError("Camera is not running")
