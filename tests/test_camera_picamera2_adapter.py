from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge.capture.errors import CaptureError
from edge.capture.frames import JpegEncoder
from edge.capture.picamera2_camera import Picamera2Backend
from edge.config.capture import Picamera2Camera
from tests import picamera2_standin


@pytest.fixture
def picamera2_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[picamera2_standin.Picamera2]]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = picamera2_standin.Picamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    picamera2_standin.Picamera2.instances.clear()
    rng = np.random.default_rng(1)
    picamera2_standin.Picamera2.frame_source = staticmethod(
        lambda w, h: rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    )
    yield picamera2_standin.Picamera2


def test_camera_is_configured_once_at_full_resolution_and_locked(
    picamera2_module: type[picamera2_standin.Picamera2],
) -> None:
    backend = Picamera2Backend("front", Picamera2Camera(backend="picamera2", index=1, settle_frames=3))
    backend.open()
    camera = picamera2_module.instances[-1]
    assert camera.camera_num == 1
    assert camera.configured["main"]["size"] == (4056, 3040)
    assert camera.started
    assert camera.controls["AeEnable"] is False and camera.controls["AwbEnable"] is False
    assert camera.controls["ExposureTime"] == 8004  # the settled value after 3 frames, then one more look
    backend.capture("front")
    backend.capture("front")
    assert len(picamera2_module.instances) == 1  # kept running between shots
    assert camera.flush_args == [True, True]
    assert camera.outstanding == 0  # every request released


def test_shot_is_a_frame_of_the_configured_size_that_encodes(
    picamera2_module: type[picamera2_standin.Picamera2],
) -> None:
    backend = Picamera2Backend("front", Picamera2Camera(backend="picamera2", width=640, height=480))
    frame = backend.capture("front")
    assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
    image = cv2.imdecode(np.frombuffer(frame.jpeg(JpegEncoder(90)), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (480, 640, 3)


def test_blank_frame_fails_with_the_camera_named(picamera2_module: type[picamera2_standin.Picamera2]) -> None:
    picamera2_module.frame_source = staticmethod(lambda w, h: np.zeros((h, w, 3), np.uint8))
    backend = Picamera2Backend("back", Picamera2Camera(backend="picamera2", width=640, height=480))
    with pytest.raises(CaptureError, match="camera back returned a blank"):
        backend.capture("back")
    assert picamera2_module.instances[-1].outstanding == 0


def test_close_stops_and_closes_the_camera(picamera2_module: type[picamera2_standin.Picamera2]) -> None:
    backend = Picamera2Backend("front", Picamera2Camera(backend="picamera2", width=640, height=480))
    backend.open()
    backend.close()
    camera = picamera2_module.instances[-1]
    assert camera.closed and not camera.started


def test_missing_picamera2_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    backend = Picamera2Backend("front", Picamera2Camera(backend="picamera2"))
    with pytest.raises(CaptureError, match="python3-picamera2"):
        backend.open()
