"""A captured session is graded from the cameras' frames while its JPEGs are written beside it.

The answer must be the one its stored JPEGs give (what a restart regrades from), the result must
wait for every photo on disk, and a session holds one full frame at a time, not all of them.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.capture.errors import CaptureError
from edge.capture.frames import Frame, JpegEncoder
from edge.capture.rig import CaptureRig
from edge.config import load_config
from edge.config.root import AppConfig
from edge.daemon.grading import SessionGrading
from edge.daemon.wiring import build
from edge.events import EventBus
from edge.grade.pipeline import Grader, _Shot
from edge.spool.db import Database
from edge.spool.sessions import SessionStore
from edge.synth import render_scene
from tests.booth_support import CONFIRM_EVERY_CRACK, REPO, VALID_IMEI, db_rows, wait_for, write_config


class FrameCamera:
    """A camera that gives frames as picamera2 and OpenCV do: arrays, no file; the spool encodes them."""

    name = "cam"

    def __init__(self, frames: dict[str, list[np.ndarray]]) -> None:
        self._frames = {section: list(shots) for section, shots in frames.items()}
        self.handed: list[weakref.ref[np.ndarray]] = []
        self.alive_at_shot: list[int] = []

    def open(self) -> None: ...

    def capture(self, section: str) -> Frame:
        self.alive_at_shot.append(sum(ref() is not None for ref in self.handed))
        image = self._frames[section].pop(0).copy()  # a new buffer per shot, as a camera gives
        self.handed.append(weakref.ref(image))
        return Frame(image)

    def close(self) -> None: ...


def _grading(config: AppConfig, tmp_path: Path) -> tuple[SessionStore, SessionGrading, Grader]:
    store = SessionStore(Database(tmp_path / "spool.db"), tmp_path / "images")
    grader = Grader(config.model, config.grading)
    return store, SessionGrading(config, store, EventBus("test-booth"), grader, lambda path: path), grader


def _twelve_megapixels(jpeg: bytes) -> np.ndarray:
    """A 4056x3040 frame: twice the render each way, so grading reads it at half scale, as on a Pi HQ camera."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return cv2.resize(image, (4056, 3040), interpolation=cv2.INTER_LINEAR)


def _render(seed: int, face: str, defects: dict[str, int]) -> bytes:
    kw = {"fill": 0.8, "blur_sigma": 0.0, "exposure": 1.0, "jpeg_quality": 95, "colour": "black"}
    return render_scene(np.random.default_rng(seed), 2028, 1520, face=face, defects=defects, **kw).jpeg  # type: ignore[arg-type]


def test_grades_from_frames_and_from_the_stored_jpegs_agree(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "cfg", tmp_path, shots=2, extra=CONFIRM_EVERY_CRACK))
    store, grading, _ = _grading(config, tmp_path)
    # Findings clear of their thresholds: a faint scratch or a chip at the edge of detection can
    # come and go with the stored JPEG's loss, as with a photo taken again.
    frames = {
        "front": [_twelve_megapixels(_render(100, "front", {"crack": 1})),
                  _twelve_megapixels(_render(22, "front", {"scratch": 2}))],
        "back": [_twelve_megapixels(_render(12, "back", {"dirt": 2}))],
    }  # fmt: skip
    rig = CaptureRig(config, cameras={"cam": FrameCamera(frames)})
    session = store.create(VALID_IMEI, "cli", status="capturing")

    record = grading.capture_and_finish(session, rig, lambda: None)

    live = record.result
    assert live is not None and (record.status, record.grade) == ("graded", "D")
    originals = store.images(session.id, "original")
    assert [(i.section, i.shot) for i in originals] == [("front", 0), ("front", 1), ("back", 0)]
    for image in originals:  # each frame stored as a JPEG of its own size, checksum recorded
        data = store.read_image(image)
        assert hashlib.sha256(data).hexdigest() == image.sha256
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (3040, 4056, 3)
    # What a restart does with a session whose photos are all stored: grade it from its JPEGs.
    again = grading.grade_and_finish(store.get(session.id), from_camera=True)
    assert again.status == record.status and again.grade == record.grade and again.result is not None
    for section, shown in live["analysis"].items():
        regraded = again.result["analysis"][section]
        assert {(d["kind"], d["place"]) for d in regraded["defects"]} == {
            (d["kind"], d["place"]) for d in shown["defects"]
        }
        assert abs(regraded["score"] - shown["score"]) <= 2, (shown, regraded)
    kinds = {d["kind"] for a in live["analysis"].values() for d in a["defects"]}
    assert {"crack", "scratch"} <= kinds  # the comparison covered real findings, not two empty answers


def test_a_session_holds_one_full_frame_however_many_photos_it_has(tmp_path: Path, booth_images: Path) -> None:
    # Read at half scale: the grader keeps its own smaller copy, so a full frame is free once read.
    extra = "\n[grading]\ndecode_long_side = 900\n"
    config = load_config(write_config(tmp_path / "cfg", booth_images, shots=7, extra=extra))
    store, grading, _ = _grading(config, tmp_path)
    photos = [cv2.imread(str(p)) for p in sorted((booth_images / "front").iterdir())]
    camera = FrameCamera({"front": [photos[i % len(photos)] for i in range(7)], "back": photos[:1]})
    session = store.create(VALID_IMEI, "cli", status="capturing")

    record = grading.capture_and_finish(session, CaptureRig(config, cameras={"cam": camera}), lambda: None)

    assert record.result is not None and len(record.result["images"]) == 8
    # Before each shot the last frame is stored and read: none of them is held any more.
    assert max(camera.alive_at_shot) == 0, camera.alive_at_shot


def test_no_result_before_every_photo_is_on_disk(tmp_path: Path, booth_images: Path) -> None:
    """The last photo's JPEG is held back until grading has drawn its overlay: the result waits."""
    config = load_config(write_config(tmp_path / "cfg", booth_images, shots=2))
    store, grading, grader = _grading(config, tmp_path)
    photos = [cv2.imread(str(p)) for p in sorted((booth_images / "front").iterdir())[:2]]
    back = cv2.imread(str(sorted((booth_images / "back").iterdir())[0]))
    graded_all = threading.Event()
    finished_before_last_write: list[bool] = []

    class SlowLastJpeg(Frame):
        def jpeg(self, encoder: JpegEncoder) -> bytes:
            assert graded_all.wait(60), "grading never finished the last photo while its JPEG waited"
            finished_before_last_write.append(store.get(session.id).finished)
            return super().jpeg(encoder)

    class Camera(FrameCamera):
        def capture(self, section: str) -> Frame:
            frame = super().capture(section)
            return SlowLastJpeg(frame.image) if section == "back" else frame

    finish = grader._finish

    def finishing(shot: _Shot, *args: Any) -> tuple[bytes, float]:
        done = finish(shot, *args)
        if shot.section == "back":
            graded_all.set()
        return done

    grader._finish = finishing  # type: ignore[method-assign]
    session = store.create(VALID_IMEI, "cli", status="capturing")
    stored = threading.Event()
    record = grading.capture_and_finish(
        session, CaptureRig(config, cameras={"cam": Camera({"front": photos, "back": [back]})}), stored.set
    )
    assert finished_before_last_write == [False]
    assert stored.is_set() and record.finished
    assert len(store.images(session.id, "original")) == 3


def _feed_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("shot-feed", "grade-"))]


def test_a_camera_failing_mid_session_stops_grading_and_keeps_the_photos_taken(
    tmp_path: Path, booth_images: Path
) -> None:
    config = load_config(write_config(tmp_path / "cfg", booth_images, shots=2))
    store, grading, _ = _grading(config, tmp_path)
    photos = [cv2.imread(str(p)) for p in sorted((booth_images / "front").iterdir())[:2]]

    class FailingBack(FrameCamera):
        def capture(self, section: str) -> Frame:
            if section == "back":
                raise CaptureError("camera cam: sensor timed out")
            return super().capture(section)

    session = store.create(VALID_IMEI, "cli", status="capturing")
    stored = threading.Event()
    with pytest.raises(CaptureError, match="back shot 1: camera cam: sensor timed out"):
        grading.capture_and_finish(session, CaptureRig(config, cameras={"cam": FailingBack({"front": photos})}),
                                   stored.set)  # fmt: skip
    assert [(i.section, i.shot) for i in store.images(session.id, "original")] == [("front", 0), ("front", 1)]
    assert not stored.is_set() and store.get(session.id).result is None
    wait_for(lambda: not _feed_threads(), timeout=10)


def test_a_grading_failure_stops_the_cameras_without_hanging(tmp_path: Path, booth_images: Path) -> None:
    config = load_config(write_config(tmp_path / "cfg", booth_images, shots=8))
    store, grading, grader = _grading(config, tmp_path)
    photos = [cv2.imread(str(p)) for p in sorted((booth_images / "front").iterdir())]
    camera = FrameCamera({"front": [photos[i % len(photos)] for i in range(8)], "back": photos[:1]})
    calls = []

    def broken_model(crop: np.ndarray) -> np.ndarray:
        calls.append(crop.shape)
        raise RuntimeError("interpreter failed")

    grader._runtime.run = broken_model  # type: ignore[method-assign]
    session = store.create(VALID_IMEI, "cli", status="capturing")
    with pytest.raises(RuntimeError, match="interpreter failed"):
        grading.capture_and_finish(session, CaptureRig(config, cameras={"cam": camera}), lambda: None)
    assert len(calls) == 1
    # The cameras stop within the few shots the bounded hand-over lets them run ahead, instead of
    # shooting the whole session of nine.
    assert len(camera.alive_at_shot) <= 5
    assert store.get(session.id).result is None
    wait_for(lambda: not _feed_threads(), timeout=10)


@pytest.mark.parametrize("phase", ["before the last photo is written", "after every photo is written"])
def test_a_kill_between_grading_and_the_jpeg_write_leaves_no_result_without_its_images(
    tmp_path: Path, booth_images: Path, phase: str
) -> None:
    """SIGKILL the booth at the two edges of the rule; the restart must never show a result whose
    photos are missing: either the session failed with the photos it kept, or it is graded whole."""
    config_path = write_config(tmp_path / "cfg", booth_images, shots=2)
    script = KILL_SCRIPT.format(before=phase.startswith("before"))
    killed = subprocess.run([sys.executable, "-c", script, str(config_path), VALID_IMEI], cwd=REPO, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    state = config_path.parent / "state"
    (session_id, status), = db_rows(state, "SELECT id, status FROM sessions")  # fmt: skip
    assert status == ("capturing" if phase.startswith("before") else "grading")

    daemon = build(load_config(config_path))
    daemon.start()
    try:
        wait_for(lambda: daemon.store.get(session_id).finished, timeout=120)
        record = daemon.store.get(session_id)
        originals = daemon.store.images(session_id, "original")
        for image in originals:
            assert (state / "images" / image.path).is_file()
        if phase.startswith("before"):
            assert record.status == "failed" and record.result is None
            assert "interrupted during capture" in (record.reason or "")
            assert len(originals) == 2  # the photos written before the kill are kept
        else:
            assert record.status == "graded" and record.result is not None
            assert len(record.result["images"]) == len(originals) == 3  # regraded from the stored JPEGs
    finally:
        daemon.stop()
        daemon.close()


# Runs the booth on one session and SIGKILLs it at one edge of the rule: once grading has drawn the
# last photo's overlay but before that photo's JPEG is written, or once every photo is written (the
# session marked for regrading) but before its result is committed.
KILL_SCRIPT = """
import os, signal, sys, threading
from pathlib import Path
from edge.capture.errors import CaptureError
from edge.capture.frames import Frame
from edge.config import load_config
from edge.daemon.wiring import build
from edge.grade.pipeline import Grader
from edge.spool.sessions import SessionStore

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if {before}:
    graded_all = threading.Event()
    finish = Grader._finish
    def finishing(self, shot, *args):
        done = finish(self, shot, *args)
        if shot.section == "back":
            graded_all.set()
        return done
    Grader._finish = finishing
    jpeg = Frame.jpeg
    asked = []
    def held_jpeg(self, encoder):
        asked.append(encoder)
        if len(asked) == 3:  # the session's last photo (front, front, back)
            graded_all.wait(60)
            die()
        return jpeg(self, encoder)
    Frame.jpeg = held_jpeg
else:
    SessionStore.finish = die
daemon = build(load_config(Path(sys.argv[1])))
daemon.start()
daemon.booth.trigger(sys.argv[2], "cli")
threading.Event().wait(120)
"""
