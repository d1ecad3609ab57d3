"""OpenCV VideoCapture: USB/V4L2 cameras and network streams."""

from __future__ import annotations

import logging

import cv2

from edge.capture.errors import CaptureError
from edge.capture.frames import Frame, check_frame, wrong_size
from edge.config.capture import OpenCVCamera

logger = logging.getLogger(__name__)


class OpenCVCameraBackend:
    def __init__(self, name: str, config: OpenCVCamera) -> None:
        self.name = name
        self.config = config
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        source = self.config.source
        if isinstance(source, str) and source.isdigit():
            source = int(source)
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"camera {self.name}: cannot open {self.config.source!r}")
        size = self.config.size
        if size is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
            # V4L2 answers a mode it cannot give with its nearest one, without an error.
            got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            if got != size:
                cap.release()
                raise CaptureError(wrong_size(self.name, got, size))
        # Auto exposure needs a few frames to settle after the device opens.
        for _ in range(self.config.warmup_frames):
            cap.grab()
        self._cap = cap

    def capture(self, section: str) -> Frame:
        if self._cap is None:
            self.open()
        assert self._cap is not None
        # grab() drops the frame buffered before the trigger, so the shot shows the phone now.
        self._cap.grab()
        ok, frame = self._cap.read()
        if not ok:
            self.close()
            raise CaptureError(f"camera {self.name}: no frame for {section}")
        return Frame(check_frame(frame, self.name, self.config.size))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
