"""The booth: trigger → session → capture → durable spool → grade → result (→ outboxes).

One session is captured at a time (there is one phone in the booth); grading is serialised on the
one interpreter. Every image is on disk and in SQLite before grading starts, and a session row
exists from the trigger on, so a crash loses nothing: ``recover()`` resumes or fails every
unfinished session on start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from edge.capture.errors import CaptureError
from edge.capture.rig import CaptureRig
from edge.config.root import AppConfig
from edge.contract import BoothProcessResponse, ProcessedImage
from edge.daemon.errors import SessionFailedError, TriggerRefusedError
from edge.daemon.status import StatusBoard
from edge.events import EventBus
from edge.grade.decode import ImageError
from edge.grade.pipeline import Grader, SessionGrade
from edge.imei import InvalidImeiError, mask_imei, validate_imei
from edge.spool.db import Database
from edge.spool.files import fsync_dir, remove_stale_temp_files
from edge.spool.retention import Retention
from edge.spool.sessions import ImageRecord, SessionRecord, SessionStore, image_path
from edge.timefmt import utc_iso

logger = logging.getLogger(__name__)

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognising, not binding


class Booth:
    def __init__(self, config: AppConfig, grader: Grader | None = None, rig: CaptureRig | None = None) -> None:
        self.config = config
        state = config.booth.state_dir
        state.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temp_files(state / "images")
        if removed:
            logger.warning("removed %d partial image files left by an interrupted write", removed)
        self.db = Database(state / "spool.db")
        self.store = SessionStore(self.db, state / "images")
        self.events = EventBus(config.booth.id)
        self.status = StatusBoard()
        self.retention = Retention(self.store, config.storage, self.events)
        self.grader = grader or Grader(config.model, config.grading)
        self.rig = rig or CaptureRig(config)
        self.mirror: Any = None  # set by the cloud mirror when it is wired in (prefer-cloud mode)

        self._queue: queue.Queue[SessionRecord | None] = queue.Queue()
        self._lock = threading.Lock()
        self._grade_lock = threading.Lock()
        self._busy: tuple[str, float] | None = None
        self._armed: tuple[str, float] | None = None
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="session-worker", daemon=True)

        self.status.set("booth_id", config.booth.id)
        self.status.set("activity", "starting")
        self.status.set("model", self.grader.info.model_dump())
        self.status.probe("disk_free_mb", lambda: round(self.retention.free_mb(), 1))
        self.status.probe("cameras", lambda: dict(self.rig.camera_state))
        self.status.probe("sessions", self.store.count_by_status)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the cameras, queue unfinished sessions for recovery, start the worker."""
        self.rig.open()
        self.recover()
        self._worker.start()
        self.status.set("activity", "idle")

    def stop(self, timeout_s: float | None = None) -> None:
        """Refuse new triggers, let the session in flight finish (or park it for the next start)."""
        self._stopping.set()
        self.status.set("activity", "stopping")
        self._queue.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout_s if timeout_s is not None else self.config.rig.session_timeout_s)
        if self._worker.is_alive():
            logger.warning("session %s still running at stop; it resumes on the next start", self._busy)
        self.rig.close()

    def close(self) -> None:
        self.db.close()

    def healthy(self) -> bool:
        """The worker runs and no session is stuck beyond its time limit (drives the watchdog)."""
        if not self._worker.is_alive() and not self._stopping.is_set():
            return False
        busy = self._busy
        limit = self.config.rig.session_timeout_s * 2
        return busy is None or time.monotonic() - busy[1] < limit

    def recover(self) -> None:
        for session in self.store.unfinished():
            kept = len(self.store.images(session.id, "original"))
            if session.status == "capturing":
                reason = f"interrupted during capture by a restart ({kept} images kept)"
                logger.warning("session %s %s", session.id, reason)
                self._fail(session.id, reason)
            else:
                logger.info("session %s was %s at shutdown; grading it now", session.id, session.status)
                self._queue.put(session)

    # -- triggers --------------------------------------------------------------------------------

    def arm(self, imei: str) -> None:
        """Remember the IMEI the kiosk entered, for a GPIO trigger (which carries none)."""
        self._armed = (self._valid(imei), time.monotonic())

    def trigger_armed(self, source: str) -> SessionRecord:
        armed, self._armed = self._armed, None
        ttl = self.config.triggers.armed_imei_ttl_s
        if armed is None or time.monotonic() - armed[1] > ttl:
            self.events.emit("trigger_rejected", source=source, code="no_imei")
            raise TriggerRefusedError("no_imei", "Invalid request: no IMEI armed for this trigger")
        return self.trigger(armed[0], source)

    def trigger(self, imei: str, source: str, request_id: str | None = None) -> SessionRecord:
        """Start a capture session now; the result follows through the store's hooks."""
        imei = self._valid(imei, source)
        if self._stopping.is_set():
            raise TriggerRefusedError("stopping", "Booth is stopping: try again in a minute")
        self._refuse_if_disk_low(source)
        with self._lock:
            if self._busy is not None:
                self.events.emit("trigger_rejected", source=source, code="busy")
                raise TriggerRefusedError("busy", "Booth is busy with another session")
            session = self.store.create(imei, source, request_id)
            self._busy = (session.id, time.monotonic())
        logger.info("session %s started by %s for %s", session.id, source, mask_imei(imei))
        self.events.emit("session_started", session_id=session.id, source=source, request_id=request_id)
        self._queue.put(session)
        return session

    def process_uploads(
        self, imei: str, uploads: Sequence[tuple[str, str, str]], source: str = "api"
    ) -> dict[str, Any]:
        """Grade images uploaded through the contract as a session like a captured one.

        ``uploads`` are (section, contract path under the images root, sha256). The files are linked into
        the session, so one upload can serve several process calls and retention of uploads never
        pulls an image from under a session.
        """
        imei = self._valid(imei, source)
        if self._stopping.is_set():
            raise TriggerRefusedError("stopping", "Booth is stopping: try again in a minute")
        self._refuse_if_disk_low(source)
        session = self.store.create(imei, source, status="captured")
        self.events.emit("session_started", session_id=session.id, source=source, request_id=None)
        now_ms = int(time.time() * 1000)
        shots: dict[str, int] = {}
        try:
            for section, rel, sha256 in uploads:
                shot = shots.setdefault(section, 0)
                shots[section] += 1
                self._link_upload(session, section, shot, rel, sha256, now_ms)
            final = self._grade_and_finish(session)
        except Exception as exc:
            # A half-linked session must not be resumed on the next start as if it were whole.
            logger.exception("session %s from %s could not be graded", session.id, source)
            reason = f"internal error: {type(exc).__name__}"
            self._fail(session.id, reason)
            raise SessionFailedError(session.id, reason) from None
        finally:
            self._show_activity()
        if final.result is None:
            raise SessionFailedError(session.id, final.reason or "see the booth log")
        result = final.result
        if self.mirror is not None and self.config.cloud.mode == "prefer-cloud":
            cloud = self.mirror.wait_for_cloud(session.id, self.config.cloud.prefer_cloud_wait_s)
            if cloud is not None:
                result = {**result, "analysis": cloud["analysis"], "analysis_source": "cloud", "cloud": cloud}
        return result

    def image_url(self, path: str) -> str:
        api = self.config.api
        base = api.public_base_url
        if not base:
            host = socket.gethostname() if api.host in WILDCARD_HOSTS else api.host
            host = f"[{host}]" if ":" in host else host
            base = f"http://{host}:{api.port}"
        return f"{base.rstrip('/')}/api/images/{quote(path)}"

    # -- the session worker ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            session = self._queue.get()
            if session is None:
                return
            try:
                self._run(session)
            except Exception:
                # The worker must survive anything one session does; the session is failed, kept.
                logger.exception("session %s failed unexpectedly", session.id)
                self._fail(session.id, "internal error while grading; see the log")
            finally:
                with self._lock:
                    if self._busy is not None and self._busy[0] == session.id:
                        self._busy = None
                self.status.set("current_session", None)
                self._show_activity()

    def _show_activity(self) -> None:
        """Back to what the booth is doing once a session (captured or uploaded) is done."""
        if self._stopping.is_set():
            activity = "stopping"
        elif self._busy is not None:
            activity = "capturing"
        else:
            activity = "idle"
        self.status.set("activity", activity)

    def _run(self, session: SessionRecord) -> None:
        self.status.set("current_session", session.id)
        if session.status == "capturing":
            self.status.set("activity", "capturing")
            started = time.monotonic()
            try:
                self.rig.capture_session(lambda section, shot, data: self.store.add_image(session, section, shot, data))
            except CaptureError as exc:
                reason = f"capture failed: {exc}"
                logger.error("session %s %s", session.id, reason)
                self.store.finish(session.id, "failed", None, reason=reason)
                self.events.emit("capture_failed", session_id=session.id, reason=str(exc))
                return
            self.store.set_status(session.id, "captured")
            capture_ms = (time.monotonic() - started) * 1000
        else:
            capture_ms = 0.0
        self._grade_and_finish(session, capture_ms)

    def _grade_and_finish(self, session: SessionRecord, capture_ms: float = 0.0) -> SessionRecord:
        self.status.set("activity", "grading")
        self.store.set_status(session.id, "grading")
        originals = self.store.images(session.id, "original")
        try:
            shots = [(image.section, self._read_verified(image)) for image in originals]
            if not shots:
                raise ImageError("session", 0, "no images were captured")
            with self._grade_lock:
                grade = self.grader.grade(shots, self._mm_per_px())
        except (ImageError, OSError) as exc:
            # An OSError's text names the file, whose path holds the IMEI: keep only the cause.
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = f"images cannot be graded: {detail}"
            logger.error("session %s %s", session.id, reason)
            record = self.store.finish(session.id, "failed", None, reason=reason)
            self.events.emit("capture_failed", session_id=session.id, reason=detail)
            return record
        overlays = [
            self.store.add_image(session, section, index, data, kind="overlay")
            for section, index, data in grade.overlays
        ]
        result = self._result(session, originals, overlays, grade, capture_ms)
        record = self.store.finish(session.id, grade.status, result, grade=grade.grade, reason=grade.reason)
        if grade.status == "retake":
            self.events.emit("retake", session_id=session.id, reason=grade.reason)
        else:
            self.events.emit("graded", session_id=session.id, grade=grade.grade, total_ms=grade.timings_ms.get("total"))
        logger.info("session %s %s grade=%s", session.id, grade.status, grade.grade)
        return record

    # -- helpers ---------------------------------------------------------------------------------

    def _fail(self, session_id: str, reason: str) -> SessionRecord:
        """Finish a session as failed, its images kept, and say so on the events channel."""
        record = self.store.finish(session_id, "failed", None, reason=reason)
        self.events.emit("failed", session_id=session_id, reason=reason)
        return record

    def check_imei(self, imei: object) -> str:
        """Validate an IMEI by this booth's policy; raises ``InvalidImeiError``."""
        return validate_imei(imei, luhn=self.config.booth.imei_check == "luhn")

    def _valid(self, imei: str, source: str = "arm") -> str:
        try:
            return self.check_imei(imei)
        except InvalidImeiError as exc:
            self.events.emit("trigger_rejected", source=source, code="invalid_imei")
            raise TriggerRefusedError("invalid_imei", str(exc)) from None

    def _refuse_if_disk_low(self, source: str) -> None:
        if self.retention.disk_low():
            free = self.retention.free_mb()
            self.events.emit("disk_low", free_mb=round(free, 1), source=source)
            raise TriggerRefusedError(
                "disk_low",
                f"Booth disk is low ({free:.0f} MB free, needs {self.config.storage.min_free_mb} MB): "
                "sessions resume once delivered data is cleaned up",
            )

    def _read_verified(self, image: ImageRecord) -> bytes:
        data = self.store.read_image(image)
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise ImageError(image.section, image.shot, "stored image is damaged (checksum mismatch)")
        return data

    def _mm_per_px(self) -> dict[str, float]:
        scales = {}
        for section, rig in self.config.rig.sections.items():
            scale = self.config.cameras[rig.camera].mm_per_px
            if scale is not None:
                scales[section] = scale
        return scales

    def _link_upload(
        self, session: SessionRecord, section: str, shot: int, rel: str, sha256: str, now_ms: int
    ) -> None:
        source = self.store.images_root / rel
        # Keep the upload's own suffix: a PNG stays a PNG when served or mirrored.
        suffix = PurePosixPath(rel).suffix or ".jpg"
        target_rel = image_path(session.imei, section, f"{section}-{shot + 1}{suffix}", now_ms)
        target = self.store.images_root / target_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
        fsync_dir(target.parent)
        # The upload's checksum was taken when it was written; grading verifies it on read.
        self.store.register_image(session.id, section, shot, "original", target_rel, sha256, target.stat().st_size)

    def _result(
        self,
        session: SessionRecord,
        originals: list[ImageRecord],
        overlays: list[ImageRecord],
        grade: SessionGrade,
        capture_ms: float,
    ) -> dict[str, Any]:
        def described(image: ImageRecord) -> ProcessedImage:
            return ProcessedImage(
                url=self.image_url(image.path), section=image.section, path=image.path, size=image.size
            )

        timings = dict(grade.timings_ms)
        if capture_ms:
            timings["capture"] = round(capture_ms, 1)
        response = BoothProcessResponse(
            sessionId=session.id,
            imei=session.imei,
            analysis=grade.analysis,
            images=[described(image) for image in originals],
            status=grade.status,
            grade=grade.grade,
            reason=grade.reason,
            model=self.grader.info,
            timings_ms=timings,
            booth_id=self.config.booth.id,
            time=utc_iso(),
            overlays=[described(image) for image in overlays],
        )
        return response.model_dump(mode="json")
