"""Picamera2 (CSI cameras on a Raspberry Pi), behind a thin adapter.

Configured once with a full-resolution main stream and kept running; exposure and white balance
are locked after they settle so every shot of every session is lit alike; each shot is a
``capture_request(flush=True)`` (a frame that started after the trigger), released at once so the
camera never runs out of buffers.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from edge.capture.errors import CaptureError
from edge.capture.frames import Frame, check_frame
from edge.config.capture import Picamera2Camera

logger = logging.getLogger(__name__)

# Metadata keys whose settled values are written back as fixed controls.
LOCKED_CONTROLS = {"ExposureTime": "ExposureTime", "AnalogueGain": "AnalogueGain", "ColourGains": "ColourGains"}
# libcamera's controls.AfModeEnum.Manual: the lens stays where LensPosition puts it.
AF_MODE_MANUAL = 0


class Picamera2Backend:
    def __init__(self, name: str, config: Picamera2Camera) -> None:
        self.name = name
        self.config = config
        self._camera: Any = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CaptureError(
                f"camera {self.name}: picamera2 is not importable ({exc}); install python3-picamera2 "
                "with apt and make the venv with --system-site-packages"
            ) from None
        found = Picamera2.global_camera_info()
        if self.config.index >= len(found):
            models = ", ".join(f"{n}: {info.get('Model', '?')}" for n, info in enumerate(found)) or "none"
            raise CaptureError(
                f"camera {self.name}: no camera {self.config.index}; libcamera sees {models}"
                " (check the ribbon cable, then rpicam-hello --list-cameras)"
            )
        camera: Any = None
        try:
            camera = Picamera2(self.config.index)
            size = tuple(self.config.size or camera.sensor_resolution)
            # RGB888 is BGR in memory, which is what OpenCV encodes without a conversion.
            still = camera.create_still_configuration(main={"size": size, "format": "RGB888"}, buffer_count=2)
            camera.configure(still)
            # libcamera may adjust the size (to even, to what the sensor offers) and only log it; a
            # frame of another size would measure every defect with the wrong mm per pixel.
            given = tuple(camera.camera_config["main"]["size"])
            if given != size:
                raise CaptureError(
                    f"camera {self.name}: gives {given[0]}x{given[1]}, not the configured {size[0]}x{size[1]};"
                    " set width and height to a size it gives"
                )
            advertised = camera.camera_controls
            if self.config.lens_position is not None:
                if "LensPosition" not in advertised:
                    raise CaptureError(f"camera {self.name}: has no focus lens; remove lens_position")
                camera.set_controls({"AfMode": AF_MODE_MANUAL, "LensPosition": self.config.lens_position})
            camera.start()
            for _ in range(self.config.settle_frames):
                camera.capture_metadata()
            if self.config.lock_exposure:
                metadata = camera.capture_metadata()
                settled = {key: metadata[m] for key, m in LOCKED_CONTROLS.items() if m in metadata}
                locks = {"AeEnable": False, "AwbEnable": False, **settled}
                # A mono sensor advertises no white balance: lock what the sensor has.
                camera.set_controls({key: value for key, value in locks.items() if key in advertised})
        except Exception as exc:
            # picamera2 holds the camera until close(), and nothing else frees it: a new
            # Picamera2 of the same number would fail until the daemon restarts.
            if camera is not None:
                with contextlib.suppress(Exception):
                    camera.close()
            if isinstance(exc, CaptureError):
                raise
            hint = (
                " (in use by another process? stop it, or the edge-grader service)"
                if "did not complete" in str(exc)
                else ""
            )
            raise CaptureError(f"camera {self.name}: cannot start camera {self.config.index}: {exc}{hint}") from None
        self._camera = camera
        logger.info("camera %s: picamera2 %dx%d running", self.name, size[0], size[1])

    def capture(self, section: str) -> Frame:
        if self._camera is None:
            self.open()
        try:
            request = self._camera.capture_request(flush=True)
        except Exception as exc:
            self.close()
            raise CaptureError(f"camera {self.name}: capture for {section} failed: {exc}") from None
        try:
            frame = request.make_array("main")
        finally:
            request.release()
        return Frame(check_frame(frame, self.name))

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
        finally:
            camera.close()
