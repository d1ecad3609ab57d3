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
    picamera2_standin.Picamera2._held.clear()
    for name, value in (("attached", 2), ("advertised", picamera2_standin.COLOUR_CONTROLS), ("fail_start", None)):
        monkeypatch.setattr(picamera2_standin.Picamera2, name, value)
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


def test_a_focus_lens_is_held_where_configured_and_a_camera_without_one_says_so(
    picamera2_module: type[picamera2_standin.Picamera2], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        picamera2_module, "advertised", picamera2_standin.COLOUR_CONTROLS + picamera2_standin.FOCUS_CONTROLS
    )
    backend = Picamera2Backend("top", Picamera2Camera(backend="picamera2", lens_position=4.0))
    backend.open()
    assert picamera2_module.instances[-1].controls["AfMode"] == 0  # manual: libcamera's own default is far away
    assert picamera2_module.instances[-1].controls["LensPosition"] == 4.0
    backend.close()
    monkeypatch.setattr(picamera2_module, "advertised", picamera2_standin.COLOUR_CONTROLS)
    with pytest.raises(CaptureError, match="camera top: has no focus lens; remove lens_position"):
        Picamera2Backend("top", Picamera2Camera(backend="picamera2", lens_position=4.0)).open()
    assert picamera2_module.instances[-1].closed  # released for the next try


def test_a_mono_sensor_locks_the_exposure_it_has(
    picamera2_module: type[picamera2_standin.Picamera2], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(picamera2_module, "advertised", picamera2_standin.MONO_CONTROLS)
    backend = Picamera2Backend("top", Picamera2Camera(backend="picamera2", settle_frames=1))
    backend.open()
    assert picamera2_module.instances[-1].controls == {"AeEnable": False, "ExposureTime": 8002, "AnalogueGain": 1.5}


def test_a_camera_that_fails_to_start_is_released_and_opens_on_the_next_try(
    picamera2_module: type[picamera2_standin.Picamera2], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(picamera2_module, "fail_start", "Failed to allocate buffers")
    backend = Picamera2Backend("top", Picamera2Camera(backend="picamera2"))
    with pytest.raises(CaptureError, match=r"camera top: cannot start camera 0: Failed to allocate buffers$"):
        backend.open()
    assert picamera2_module.instances[-1].closed
    monkeypatch.setattr(picamera2_module, "fail_start", None)
    backend.open()  # a camera left held would fail here, as libcamera's acquire does
    assert picamera2_module.instances[-1].started


def test_a_camera_held_elsewhere_missing_or_resized_is_refused_with_what_to_do(
    picamera2_module: type[picamera2_standin.Picamera2],
) -> None:
    held = Picamera2Backend("other", Picamera2Camera(backend="picamera2"))
    held.open()
    with pytest.raises(CaptureError, match=r"Camera __init__ sequence did not complete\. \(in use by another process"):
        Picamera2Backend("top", Picamera2Camera(backend="picamera2")).open()
    held.close()
    with pytest.raises(CaptureError, match=r"no camera 5; libcamera sees 0: imx477, 1: imx477 \(check the ribbon"):
        Picamera2Backend("top", Picamera2Camera(backend="picamera2", index=5)).open()
    odd = Picamera2Camera(backend="picamera2", width=641, height=480)
    with pytest.raises(CaptureError, match="camera top: gives 640x480, not the configured 641x480"):
        Picamera2Backend("top", odd).open()
    assert picamera2_module.instances[-1].closed
