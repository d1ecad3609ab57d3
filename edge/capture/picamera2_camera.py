"""Picamera2 (CSI cameras on a Raspberry Pi), behind a thin adapter.

Configured once with a full-resolution main stream and kept running; exposure and white balance
are locked after they settle so every shot of every session is lit alike; each shot is a
``capture_request(flush=True)`` (a frame that started after the trigger), released at once so the
camera never runs out of buffers.
"""

from __future__ import annotations

import logging
from typing import Any

from edge.capture.errors import CaptureError
from edge.capture.frames import Frame, check_frame
from edge.config.capture import Picamera2Camera

logger = logging.getLogger(__name__)

# Metadata keys whose settled values are written back as fixed controls.
LOCKED_CONTROLS = {"ExposureTime": "ExposureTime", "AnalogueGain": "AnalogueGain", "ColourGains": "ColourGains"}


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
        try:
            camera = Picamera2(self.config.index)
            size = self.config.size or camera.sensor_resolution
            # RGB888 is BGR in memory, which is what OpenCV encodes without a conversion.
            still = camera.create_still_configuration(main={"size": size, "format": "RGB888"}, buffer_count=2)
            camera.configure(still)
            camera.start()
            for _ in range(self.config.settle_frames):
                camera.capture_metadata()
            if self.config.lock_exposure:
                metadata = camera.capture_metadata()
                controls = {key: metadata[m] for key, m in LOCKED_CONTROLS.items() if m in metadata}
                camera.set_controls({"AeEnable": False, "AwbEnable": False, **controls})
        except CaptureError:
            raise
        except Exception as exc:
            raise CaptureError(f"camera {self.name}: cannot start camera {self.config.index}: {exc}") from None
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
