"""A faithful stand-in for the parts of picamera2's API the adapter calls.

Method names, arguments and return shapes follow the Picamera2 manual: ``Picamera2(camera_num)``,
``sensor_resolution``, ``create_still_configuration(main=..., buffer_count=...)``, ``configure``,
``start``, ``capture_metadata``, ``set_controls``, ``capture_request(flush=...)`` returning a
``CompletedRequest`` with ``make_array(name)`` and ``release()``, ``stop``, ``close``. It enforces
the same ordering rules (configure before start, release every request) so misuse fails here as it
would on a Pi, and is no kinder than the library where the adapter could trip:
``global_camera_info()`` lists the cameras attached and ``Picamera2(n)`` of one not attached raises
IndexError; a camera is held by one instance until ``close()`` (another fails as libcamera's
acquire does); ``camera_controls`` lists what the sensor advertises and ``set_controls`` refuses
anything else (a mono sensor has no white balance, only a Camera Module 3 a focus lens); and
``configure`` rounds the main stream's size down to even, writing the size it took back into the
configuration and ``camera_config``, as picamera2 does.
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


COLOUR_CONTROLS = ("AeEnable", "AwbEnable", "ExposureTime", "AnalogueGain", "ColourGains")
MONO_CONTROLS = ("AeEnable", "ExposureTime", "AnalogueGain")
FOCUS_CONTROLS = ("AfMode", "LensPosition")


class Picamera2:
    instances: ClassVar[list[Picamera2]] = []
    frame_source: Any = None  # callable () -> ndarray, set by the test
    attached: ClassVar[int] = 1  # cameras libcamera sees
    advertised: ClassVar[tuple[str, ...]] = COLOUR_CONTROLS  # what each camera's sensor offers
    fail_start: ClassVar[str | None] = None  # start() raises RuntimeError with this text
    _held: ClassVar[set[int]] = set()

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return [{"Model": "imx477", "Location": 2, "Num": n} for n in range(Picamera2.attached)]

    def __init__(self, camera_num: int = 0) -> None:
        Picamera2.global_camera_info()[camera_num]  # IndexError for a camera not attached, as picamera2
        if camera_num in Picamera2._held:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        Picamera2._held.add(camera_num)
        self.camera_num = camera_num
        self.sensor_resolution = (4056, 3040)
        self.camera_controls = {name: (None, None, None) for name in Picamera2.advertised}
        self.camera_config: dict[str, Any] | None = None
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
        width, height = config["main"]["size"]
        config["main"]["size"] = (width - width % 2, height - height % 2)
        self.configured = self.camera_config = config

    def start(self) -> None:
        if self.configured is None:
            raise RuntimeError("Camera has not been configured")
        if Picamera2.fail_start:
            raise RuntimeError(Picamera2.fail_start)
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
        for name in controls:
            if name not in self.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
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
        Picamera2._held.discard(self.camera_num)

    def _require_running(self) -> None:
        if not self.started:
            raise RuntimeError("Camera is not running")
