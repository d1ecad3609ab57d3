from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.errors import CaptureError
from edge.capture.frames import JpegEncoder, check_frame
from edge.capture.opencv_camera import OpenCVCameraBackend
from edge.config.capture import OpenCVCamera
from tests.booth_support import VALID_IMEI, DaemonProcess, write_config


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


def test_a_camera_that_gives_another_size_than_configured_is_refused_with_both_sizes(tmp_path: Path) -> None:
    # A stream cannot change its size, as a USB camera short of bandwidth falls back to a smaller mode.
    source = str(_video(tmp_path / "s.avi"))
    backend = OpenCVCameraBackend("usb", OpenCVCamera(backend="opencv", source=source, width=640, height=480))
    with pytest.raises(CaptureError, match="camera usb gives 320x240 frames, not the configured 640x480"):
        backend.open()
    with pytest.raises(CaptureError, match="320x240"):
        backend.capture("front")  # each shot tries the camera again, and refuses it again


def test_a_camera_that_gives_its_configured_size_shoots(tmp_path: Path) -> None:
    source = str(_video(tmp_path / "s.avi"))
    backend = OpenCVCameraBackend("usb", OpenCVCamera(backend="opencv", source=source, width=320, height=240))
    assert backend.capture("front").image.shape == (240, 320, 3)
    backend.close()


def test_a_frame_of_another_size_than_configured_is_refused() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert check_frame(frame, "usb", (640, 480)) is frame
    with pytest.raises(CaptureError, match="camera usb gives 640x480 frames, not the configured 1920x1080"):
        check_frame(frame, "usb", (1920, 1080))


def test_the_booth_fails_a_session_whose_camera_gives_another_size_and_says_why(
    tmp_path: Path, booth_images: Path
) -> None:
    config = write_config(tmp_path / "cfg", booth_images)
    replay = f'backend = "replay"\nfolder = "{booth_images}"'
    text = config.read_text()
    assert replay in text
    video = _video(tmp_path / "s.avi", 40)
    config.write_text(text.replace(replay, f'backend = "opencv"\nsource = "{video}"\nwidth = 640\nheight = 480'))
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_ready()
        answer = json.loads(daemon.cli("trigger", "--imei", VALID_IMEI, "--wait").stdout)
        status = json.loads(daemon.cli("status").stdout)["status"]
    finally:
        daemon.stop()
    wrong = "camera cam gives 320x240 frames, not the configured 640x480"
    assert answer["status"] == "failed"
    assert answer["reason"].startswith(f"capture failed: front shot 1: {wrong}")
    assert status["cameras"]["cam"].startswith(f"error: {wrong}")
