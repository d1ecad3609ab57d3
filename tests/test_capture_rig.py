from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from edge.capture.errors import CaptureError
from edge.capture.frames import Frame, JpegEncoder
from edge.capture.rig import CaptureRig
from edge.config import load_config
from edge.config.root import AppConfig
from edge.daemon.notify import Notifier
from edge.daemon.run import watchdog_tick
from edge.daemon.wiring import build
from tests.booth_support import api_base, wait_for, write_config


@pytest.fixture(autouse=True)
def mock_pins() -> Iterator[None]:
    Device.pin_factory = MockFactory()
    yield
    Device.pin_factory.reset()


def _images(folder: Path, count: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for section in ("front", "back"):
        (folder / section).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / section / f"{i:02d}.jpg"), image)
    return folder


def test_rig_shoots_every_section_in_order(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, _images(tmp_path / "imgs"), shots=2))
    rig = CaptureRig(config)
    rig.open()
    shots: list[tuple[str, int, Frame]] = []
    rig.capture_session(lambda section, shot, frame: shots.append((section, shot, frame)))
    rig.close()
    assert [(s, n) for s, n, _ in shots] == [("front", 0), ("front", 1), ("back", 0)]
    folder = tmp_path / "imgs"
    files = [folder / "front" / "00.jpg", folder / "front" / "01.jpg", folder / "back" / "00.jpg"]
    for (_, _, frame), path in zip(shots, files, strict=True):
        assert frame.image.shape == (240, 320, 3)  # decoded once, for the grader
        # The replayed JPEG is stored as it is, not encoded again.
        assert frame.jpeg(JpegEncoder(90)) == path.read_bytes()


def test_corrupt_replay_file_fails_the_session_with_a_named_reason(tmp_path: Path) -> None:
    folder = _images(tmp_path / "imgs", count=1)
    (folder / "back" / "00.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    config = load_config(write_config(tmp_path, folder))
    rig = CaptureRig(config)
    taken: list[str] = []
    with pytest.raises(CaptureError, match="back shot 1: camera cam returned a file that is not a decodable image"):
        rig.capture_session(lambda section, shot, data: taken.append(section))
    assert taken == ["front"]  # what was shot before the failure was handed on to the spool


class HangingCamera:
    name = "cam"

    def __init__(self) -> None:
        self.release = threading.Event()

    def open(self) -> None: ...

    def capture(self, section: str) -> Frame:
        self.release.wait(30)
        return Frame(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))

    def close(self) -> None:
        self.release.set()


def test_a_hanging_camera_times_out_instead_of_hanging_the_daemon(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, tmp_path / "imgs"))
    config.cameras["cam"].timeout_s = 0.5
    camera = HangingCamera()
    rig = CaptureRig(config, cameras={"cam": camera})
    with pytest.raises(CaptureError, match=r"did not answer within 0\.5 s"):
        rig.capture_session(lambda *a: None)
    assert rig.camera_state["cam"].startswith("error")
    rig.close()


def test_a_hung_shot_keeps_its_one_thread_and_the_camera_waits_for_it(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, tmp_path / "imgs"))
    # A camera name of its own: threads of other tests' rigs do not count here.
    config.cameras = {"hung": config.cameras["cam"]}
    for section in config.rig.sections.values():
        section.camera = "hung"
    config.cameras["hung"].timeout_s = 0.5
    camera = HangingCamera()
    rig = CaptureRig(config, cameras={"hung": camera})

    def camera_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("camera-hung"))

    with pytest.raises(CaptureError, match="did not answer"):
        rig.capture_session(lambda *a: None)
    for _ in range(5):  # the next sessions are refused at once: no new thread per hung shot
        with pytest.raises(CaptureError, match="still stuck in an earlier call"):
            rig.capture_session(lambda *a: None)
    assert camera_threads() == 1
    hung, camera.release = camera.release, threading.Event()
    camera.release.set()  # shots from now on return at once
    hung.set()  # the stuck driver call returns at last

    def works() -> bool:
        try:
            rig.capture_session(lambda *a: None)
        except CaptureError:
            return False
        return True

    wait_for(works, timeout=10)  # the camera works again, on its one thread
    assert camera_threads() == 1
    rig.close()


def test_a_camera_stuck_past_its_wedged_limit_stops_the_watchdog_pings_until_it_returns(tmp_path: Path) -> None:
    path = write_config(tmp_path, tmp_path / "imgs")
    config = load_config(path)
    config.cameras["cam"].timeout_s = 0.2
    config.rig.wedged_camera_s = 1.0
    camera = HangingCamera()
    daemon = build(config, rig=CaptureRig(config, cameras={"cam": camera}))
    daemon.start()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    notifier = Notifier(str(tmp_path / "notify.sock"))
    try:
        with pytest.raises(CaptureError, match="did not answer"):
            daemon.booth.rig.shoot("cam")
        # Timed out, but not yet past the limit: the booth refuses shots and stays up.
        assert daemon.down() == []
        wait_for(lambda: daemon.down() == ["camera-cam"], timeout=30)
        assert watchdog_tick(daemon, notifier, []) == ["camera-cam"]
        with pytest.raises(BlockingIOError):
            sock.recv(4096)  # systemd restarts the daemon, which opens the camera afresh
        health = httpx.get(f"{api_base(path)}/healthz", timeout=30).json()
        assert (health["status"], health["down"]) == ("down", ["camera-cam"])

        camera.release.set()  # the driver call returns after all
        wait_for(lambda: daemon.down() == [], timeout=30)
        assert watchdog_tick(daemon, notifier, ["camera-cam"]) == []
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        notifier.close()
        sock.close()
        daemon.stop()
        daemon.close()


def _front_lit_by_ring(tmp_path: Path) -> AppConfig:
    """One camera for both sections; the ring light is on for the front's shots only."""
    extra = "[lights.ring]\npin = 27\nsettle_s = 0\n"
    path = write_config(tmp_path, _images(tmp_path / "imgs"), extra=extra)
    path.write_text(
        path.read_text().replace(
            "shots = 1\n\n[rig.sections.back]", 'shots = 1\nlights = ["ring"]\n\n[rig.sections.back]', 1
        )
    )
    return load_config(path)


def test_lights_are_on_during_each_shot_and_off_after(tmp_path: Path) -> None:
    rig = CaptureRig(_front_lit_by_ring(tmp_path))
    lit: list[tuple[str, bool]] = []
    camera = rig.cameras["cam"]
    original = camera.capture

    def capture(section: str) -> Frame:
        lit.append((section, rig.lights.is_lit("ring")))
        return original(section)

    camera.capture = capture  # type: ignore[method-assign]
    rig.capture_session(lambda *a: None)
    assert lit == [("front", True), ("back", False)]
    assert not rig.lights.is_lit("ring")
    rig.close()


def test_a_camera_opens_and_takes_test_shots_under_its_sections_lights(tmp_path: Path) -> None:
    # A camera that locks exposure and white balance as it opens must see the lamp its shots see,
    # and an empty-booth reference must be lit as a session's frames are.
    rig = CaptureRig(_front_lit_by_ring(tmp_path))
    camera = rig.cameras["cam"]
    lit: list[tuple[str, bool]] = []
    opening, capturing = camera.open, camera.capture

    def open_() -> None:
        lit.append(("open", rig.lights.is_lit("ring")))
        opening()

    def capture(section: str) -> Frame:
        lit.append((section, rig.lights.is_lit("ring")))
        return capturing(section)

    camera.open = open_  # type: ignore[method-assign]
    camera.capture = capture  # type: ignore[method-assign]
    rig.open()
    rig.shoot("cam")
    assert lit == [("open", True), ("front", True)]
    assert not rig.lights.is_lit("ring")
    rig.close()


def test_a_test_shot_during_a_sessions_shot_waits_and_is_lit_as_its_own(tmp_path: Path) -> None:
    rig = CaptureRig(_front_lit_by_ring(tmp_path))
    camera = rig.cameras["cam"]
    capturing = camera.capture
    in_shot, finish_shot = threading.Event(), threading.Event()
    lit: list[tuple[str, bool]] = []

    def capture(section: str) -> Frame:
        if not in_shot.is_set():  # the session's first shot holds until the test shot has been asked for
            in_shot.set()
            finish_shot.wait(10)
        lit.append((section, rig.lights.is_lit("ring")))
        return capturing(section)

    camera.capture = capture  # type: ignore[method-assign]
    session = threading.Thread(target=rig.capture_session, args=(lambda *a: None,))
    session.start()
    assert in_shot.wait(10)
    test_shot = threading.Thread(target=rig.shoot, args=("cam",))
    test_shot.start()
    time.sleep(0.2)  # the test shot is waiting, not shooting
    finish_shot.set()
    session.join(10)
    test_shot.join(10)
    # The test shot comes between the session's shots or after them (either may take the lights
    # next), always under the front's ring; the session's back is never lit by it.
    assert sorted(lit) == [("back", False), ("front", True), ("front", True)]
    rig.close()
