"""The capture rig: every section's camera, shots and lights, with a time limit on each shot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import TypeVar

from edge.capture.camera import Camera, make_camera
from edge.capture.errors import CaptureError
from edge.capture.frames import Frame
from edge.capture.lights import Lights
from edge.config.root import AppConfig

logger = logging.getLogger(__name__)

ShotSink = Callable[[str, int, Frame], None]
T = TypeVar("T")


class CaptureRig:
    def __init__(self, config: AppConfig, cameras: dict[str, Camera] | None = None) -> None:
        self.config = config
        self.cameras = cameras or {name: make_camera(name, cam) for name, cam in config.cameras.items()}
        self.lights = Lights(config.lights)
        # One thread per camera: a shot that hangs in a driver blocks only that camera's thread,
        # and the session fails on the timeout instead of the daemon hanging. The hung call keeps
        # the thread; the camera refuses shots until it returns, so threads never pile up.
        self._executors = {
            name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"camera-{name}") for name in self.cameras
        }
        self._hung: dict[str, tuple[Future[object], float]] = {}  # the call, and when it timed out
        self._lighting = threading.Lock()
        self.camera_state: dict[str, str] = dict.fromkeys(self.cameras, "closed")

    def open(self) -> None:
        """Open every camera; a camera that fails is reported and retried at its next shot.

        Each opens under the lights of the first section it serves: a camera that settles and locks
        its exposure and white balance as it opens must see the booth as its shots will."""
        for name, camera in self.cameras.items():
            timeout = self.config.cameras[name].timeout_s * 4
            try:
                with self._lit(self._lights_of(name)):
                    self._run(name, camera.open, timeout)
                self.camera_state[name] = "ready"
            except CaptureError as exc:
                self.camera_state[name] = f"error: {exc}"
                logger.error("%s", exc)

    def capture_session(self, sink: ShotSink) -> None:
        """Shoot every section in rig order, handing each shot to ``sink`` before the next."""
        for section, rig in self.config.rig.sections.items():
            camera = self.cameras[rig.camera]
            timeout = self.config.cameras[rig.camera].timeout_s
            for shot in range(rig.shots):
                with self._lit(rig.lights):
                    try:
                        frame = self._run(rig.camera, lambda c=camera, s=section: c.capture(s), timeout)
                    except CaptureError as exc:
                        self.camera_state[rig.camera] = f"error: {exc}"
                        raise CaptureError(f"{section} shot {shot + 1}: {exc}") from None
                self.camera_state[rig.camera] = "ready"
                sink(section, shot, frame)
                del frame  # a 12 MP frame is 37 MB: not kept through the next shot

    def shoot(self, camera: str) -> Frame:
        """One photo from one camera outside a session (a technician's test shot, a calibration),
        named after the first section it serves, under the same time limit as a session's shots."""
        if camera not in self.cameras:
            raise CaptureError(f"no camera {camera!r}; cameras: {', '.join(self.cameras)}")
        section = self._first_section(camera)
        cam = self.cameras[camera]
        # Lit as that section's shots are: an empty-booth reference must look like a session's frames.
        with self._lit(self._lights_of(camera)):
            frame = self._run(camera, lambda: cam.capture(section or camera),
                              self.config.cameras[camera].timeout_s)  # fmt: skip
        self.camera_state[camera] = "ready"
        return frame

    @contextmanager
    def _lit(self, names: Sequence[str]) -> Iterator[None]:
        """Lights on for one shot (or a camera opening), one shot at a time: a technician's test
        shot during a session's shot would otherwise turn the lamp off under it, or on."""
        with self._lighting, self.lights.on(names):
            yield

    def _first_section(self, camera: str) -> str | None:
        """The first section the camera serves, which its test shots and calibration stand for."""
        return next((s for s, rig in self.config.rig.sections.items() if rig.camera == camera), None)

    def _lights_of(self, camera: str) -> list[str]:
        """The lights of the camera's first section (none when it serves none)."""
        section = self._first_section(camera)
        return [] if section is None else self.config.rig.sections[section].lights

    def wedged(self) -> list[str]:
        """Cameras stuck in one call for longer than ``[rig] wedged_camera_s`` past its time limit:
        a driver call that long is not coming back, and only a new process opens the camera afresh."""
        now = time.monotonic()
        limit = self.config.rig.wedged_camera_s
        # A copy: the watchdog's thread reads while a camera's caller may add or drop an entry.
        hung = list(self._hung.items())
        return [name for name, (call, since) in hung if not call.done() and now - since > limit]

    def _run(self, name: str, fn: Callable[[], T], timeout: float) -> T:
        hung = self._hung.get(name)
        if hung is not None:
            if not hung[0].done():
                raise CaptureError(f"camera {name} is still stuck in an earlier call")
            del self._hung[name]
        future: Future[T] = self._executors[name].submit(fn)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            self._hung[name] = (future, time.monotonic())  # type: ignore[assignment]
            raise CaptureError(f"camera {name} did not answer within {timeout:g} s") from None
        except CaptureError:
            raise
        except Exception as exc:
            raise CaptureError(f"camera {name} failed: {exc}") from None

    def close(self) -> None:
        for name, camera in self.cameras.items():
            try:
                camera.close()
            except Exception:
                logger.exception("camera %s did not close cleanly", name)
            self._executors[name].shutdown(wait=False, cancel_futures=True)
        self.lights.close()
