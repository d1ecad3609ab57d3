"""What the technician's screen asks of the running booth: its state, review decisions, a test
shot per camera with the quality gate's verdict, and a calibration through the running rig."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import deque
from typing import Any

import cv2
import numpy as np

from edge.capture.calibrate import calibrate
from edge.capture.errors import CaptureError
from edge.capture.rig import CaptureRig
from edge.config.root import AppConfig
from edge.daemon.grading import SessionGrading
from edge.daemon.logs import LineFormatter
from edge.events import Event, EventBus
from edge.grade.reference import load_reference
from edge.spool.outbox import Outbox
from edge.spool.sessions import SessionRecord, SessionStore
from edge.status import StatusBoard

logger = logging.getLogger(__name__)

RECENT_EVENTS = 50
# A test shot is shown on a small screen: a long side of this many pixels is plenty.
PREVIEW_LONG_SIDE = 640
PREVIEW_QUALITY = 80
OUTBOX_CHANNELS = ("mqtt", "cloud")


class LastError(logging.Handler):
    """The last ERROR the daemon logged, for the technician's screen."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.setFormatter(LineFormatter())  # as in the journal: IMEIs masked, a traceback on its line
        self.last: dict[str, Any] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = {"time": record.created, "logger": record.name, "message": self.format(record)}


class RecentEvents:
    """An ``EventBus`` subscriber keeping the newest events."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self._events: deque[Event] = deque(maxlen=size)
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def newest_first(self) -> list[Event]:
        with self._lock:
            return list(reversed(self._events))


class TechnicianDesk:
    def __init__(
        self,
        config: AppConfig,
        store: SessionStore,
        outbox: Outbox,
        events: EventBus,
        status: StatusBoard,
        rig: CaptureRig,
        grading: SessionGrading,
        last_error: LastError,
    ) -> None:
        self.config = config
        self.store = store
        self.outbox = outbox
        self.events = events
        self.status = status
        self.rig = rig
        self.grading = grading
        self.last_error = last_error
        self.recent = RecentEvents()
        self.started_at = time.monotonic()  # uptime survives the wall clock being set

    def state(self) -> dict[str, Any]:
        snapshot = self.status.snapshot()
        return {
            "booth_id": self.config.booth.id,
            "activity": snapshot.get("activity"),
            "cameras": snapshot.get("cameras"),
            "model": snapshot.get("model"),
            "broker": {"enabled": self.config.mqtt.enabled, "connected": bool(snapshot.get("mqtt_connected"))},
            "cloud": snapshot.get("cloud"),
            "outbox_depth": {channel: self.outbox.depth(channel) for channel in OUTBOX_CHANNELS},
            "disk_free_mb": snapshot.get("disk_free_mb"),
            "uptime_s": round(time.monotonic() - self.started_at),
            "last_error": self.last_error.last,
        }

    def recent_events(self) -> list[Event]:
        return self.recent.newest_first()

    def delivery(self, session_id: str) -> dict[str, str | None]:
        """Each outbox's state of a session's latest row: pending, done, dead, dropped or None."""
        return {channel: self.outbox.state_of(channel, session_id) for channel in OUTBOX_CHANNELS}

    def review(self, session_id: str, grade: str, reviewed_by: str, note: str) -> SessionRecord:
        record = self.store.review(session_id, grade, reviewed_by, note)
        logger.info("session %s reviewed: grade %s (provisional %s)", session_id, grade, record.provisional_grade)
        self.events.emit(
            "reviewed", session_id=session_id, grade=grade, provisional_grade=record.provisional_grade,
            reviewed_by=reviewed_by,
        )  # fmt: skip
        return record

    def test_shot(self, camera: str) -> dict[str, Any]:
        """One photo and the quality gate's checks on it; raises CaptureError."""
        image = self.rig.shoot(camera).image
        verdict = self.grading.grader.gate(image, load_reference(self.config.booth.state_dir, camera))
        return {
            "camera": camera,
            "ok": verdict is None,
            "verdict": verdict or "ok: the photo passes the quality gate",
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "preview": _preview(image),
        }

    def calibrate(self, camera: str, force: bool) -> str:
        """Store the camera's empty booth (raises CalibrationError) and grade with it from now on."""
        if camera not in self.rig.cameras:
            raise CaptureError(f"no camera {camera!r}; cameras: {', '.join(self.rig.cameras)}")
        path = calibrate(self.config, camera, lambda: self.rig.shoot(camera).image, force=force)
        self.grading.load_references()
        return path.name


def _preview(image: np.ndarray) -> str:
    scale = PREVIEW_LONG_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_QUALITY])
    if not ok:
        raise CaptureError("test shot could not be encoded for the screen")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()
