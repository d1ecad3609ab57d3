from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.errors import CaptureError
from edge.capture.frames import JpegEncoder
from edge.capture.opencv_camera import OpenCVCameraBackend
from edge.config.capture import OpenCVCamera


def _video(path: Path, frames: int = 12) -> Path:
    """A real MJPEG AVI: VideoCapture reads it through the same API as a V4L2 device or a stream."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    assert writer.isOpened()
    rng = np.random.default_rng(3)
    for i in range(frames):
        frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        cv2.putText(frame, str(i), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
        writer.write(frame)
    writer.release()
    return path


def test_stream_shots_are_frames_of_the_stream_size(tmp_path: Path) -> None:
    backend = OpenCVCameraBackend(
        "usb", OpenCVCamera(backend="opencv", source=str(_video(tmp_path / "s.avi")), warmup_frames=2)
    )
    backend.open()
    first = backend.capture("front")
    second = backend.capture("front")
    backend.close()
    for frame in (first, second):
        assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
        assert frame.jpeg_file is None  # the spool encodes it, off the grading path
        stored = frame.jpeg(JpegEncoder(90))
        assert cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    assert not np.array_equal(first.image, second.image)  # each shot is a new frame, not the buffered one again


def test_unopenable_source_fails_with_the_camera_named(tmp_path: Path) -> None:
    backend = OpenCVCameraBackend("usb", OpenCVCamera(backend="opencv", source=str(tmp_path / "absent.avi")))
    with pytest.raises(CaptureError, match="camera usb: cannot open"):
        backend.open()


def test_end_of_stream_fails_the_shot_instead_of_hanging(tmp_path: Path) -> None:
    backend = OpenCVCameraBackend(
        "usb", OpenCVCamera(backend="opencv", source=str(_video(tmp_path / "s.avi", 3)), warmup_frames=0)
    )
    backend.open()
    with pytest.raises(CaptureError, match="no frame"):
        for _ in range(5):
            backend.capture("back")
