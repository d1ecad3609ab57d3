"""The booth: triggers → one bounded session queue → one session worker (capture, then grading).

Every way to start a session (GPIO, CLI, HTTP, MQTT, /api/process) is admitted here against one
bound, ``[booth] max_sessions`` sessions queued or running; past it the booth answers ``busy``.
One worker captures and grades them one at a time, reading their photos itself, so memory stays
flat however many requests arrive. A session row exists from the trigger on; a captured session is
graded from the cameras' frames while its photos are written, and its result waits until every
photo is on disk and in SQLite, so a crash loses nothing: ``recover()`` regrades a session whose
photos are all stored and fails one cut short during capture, its photos kept (as it fails an API
session still ``linking`` its uploads: never graded on part of its photos).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from edge.capture.errors import CaptureError
from edge.capture.rig import CaptureRig
from edge.config.root import AppConfig
from edge.daemon.grading import SessionGrading
from edge.errors import SessionFailedError, TriggerRefusedError
from edge.events import EventBus
from edge.grade.pipeline import Grader
from edge.imei import InvalidImeiError, mask_imei, validate_imei
from edge.spool.reserve import DiskReserve, disk_full
from edge.spool.retention import MB, Retention
from edge.spool.sessions import SessionRecord, SessionStore
from edge.status import StatusBoard
from edge.statuses import Status
from edge.worker import Worker

logger = logging.getLogger(__name__)

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognising, not binding
POLL_S = 1.0
# A session found grading at more starts than this is failed, not graded again: its grading may be
# what kills the daemon (memory, a native crash, a stall the watchdog ends), and a restart loop
# would hold the booth. A power cut twice in one session's grading still gets its grade; sessions
# only queued behind it are not counted.
MAX_REGRADES = 2
# What a refusal for a full queue suggests: about one grading on a Pi.
BUSY_RETRY_AFTER_S = 5
STOPPING = "Booth is stopping: try again in a minute"
DISK_FULL = "disk full: the session could not be stored"
# The source of a session graded from uploaded photos (``/api/process``); every other came from the cameras.
UPLOADS = "api"

CloudWait = Callable[[str, float], "dict[str, Any] | None"]


def with_cloud_analysis(result: dict[str, Any], cloud: dict[str, Any]) -> dict[str, Any]:
    """The booth's result with the cloud's scores, issues and recommendations per section (prefer-cloud).

    Each section keeps the booth's own fields (status, reason, defects): a section the booth asked
    to retake still says so, whatever score the cloud gave its photo.
    """
    booth = result["analysis"]
    analysis = {**booth, **{s: {**booth.get(s, {}), **a} for s, a in cloud["analysis"].items()}}
    return {**result, "analysis": analysis, "analysis_source": "cloud", "cloud": cloud}


class Booth:
    def __init__(
        self,
        config: AppConfig,
        store: SessionStore,
        events: EventBus,
        status: StatusBoard,
        retention: Retention,
        grader: Grader,
        rig: CaptureRig,
        reserve: DiskReserve,
        wait_for_cloud: CloudWait | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.events = events
        self.status = status
        self.retention = retention
        self.grader = grader
        self.rig = rig
        self.reserve = reserve
        self._wait_for_cloud = wait_for_cloud
        self.grading = SessionGrading(config, store, events, grader, self.image_url)
        self._jobs: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Held from the request_id look-up to the new row, so one request_id makes one session.
        self._trigger_lock = threading.Lock()
        self._admitted = 0
        self._capturing: str | None = None
        self._current: tuple[str, float] | None = None
        self._finished: dict[str, threading.Event] = {}
        self._armed: tuple[str, float] | None = None
        self._stopping = threading.Event()
        # Failures the full disk would not let us write yet: session id -> reason.
        self._unrecorded: dict[str, str] = {}
        self._disk_was_low = False  # as last seen while idle
        self.worker = Worker("session-worker", self._step)
        status.set("booth_id", config.booth.id)
        status.set("activity", "starting")
        status.set("model", grader.info.model_dump())

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the cameras, queue unfinished sessions for recovery, start the worker."""
        self.rig.open()
        self.grading.load_references()
        self.recover()
        self.worker.start()
        self._show_activity()

    def stop(self, timeout_s: float | None = None) -> None:
        """Refuse new sessions, let the one in flight finish (or park it for the next start)."""
        self._stopping.set()
        self.status.set("activity", "stopping")
        if not self.worker.stop(timeout_s if timeout_s is not None else self.config.rig.session_timeout_s):
            logger.warning("session %s still running at stop; it resumes on the next start", self._current)
        self.rig.close()

    def alive(self) -> bool:
        """The worker runs and no session is stuck beyond twice its time limit (drives the watchdog)."""
        current = self._current
        stuck = current is not None and time.monotonic() - current[1] > self.config.rig.session_timeout_s * 2
        return self.worker.alive() and not stuck

    def recover(self) -> None:
        for session in self.store.unfinished():
            kept = len(self.store.images(session.id, "original"))
            if session.status in ("capturing", "linking"):
                what = "capture" if session.status == "capturing" else "linking of its uploads"
                reason = f"interrupted during {what} by a restart ({kept} images kept)"
                logger.warning("session %s %s", session.id, reason)
                self._fail(session.id, reason)
            elif session.status == "grading" and (starts := self.store.note_recovery(session.id)) > MAX_REGRADES:
                reason = (
                    f"grading was cut short by a restart {starts} times, so it is not tried again"
                    f" ({kept} images kept)"
                )
                logger.error("session %s %s", session.id, reason)
                self._fail(session.id, reason)
            else:
                logger.info("session %s was %s at shutdown; grading it now", session.id, session.status)
                with self._lock:
                    self._admitted += 1  # over the bound if need be: it was admitted before the restart
                self._jobs.put(session.id)

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
        """Queue a capture session; the result follows through the outbox.

        A ``request_id`` already seen (any source) answers its first session and starts none:
        clients resend a request whose answer they missed. For another phone it is refused: the
        first session is that phone's customer's, not the sender's.
        """
        with self._trigger_lock:
            if request_id is not None and (first := self.store.by_request_id(request_id)) is not None:
                if first.imei != self._valid(imei, source):
                    self.events.emit("trigger_rejected", source=source, code="request_conflict")
                    raise TriggerRefusedError(
                        "request_conflict", f"Conflict: request_id {request_id!r} was already used for another phone"
                    )
                logger.info("session %s: request %r again from %s; no new session", first.id, request_id, source)
                return first
            imei = self._admit(imei, source, capture=True)
            session = self._create(imei, source, request_id, "capturing")
            with self._lock:
                self._capturing = session.id
        logger.info("session %s started by %s for %s", session.id, source, mask_imei(imei))
        self.events.emit("session_started", session_id=session.id, source=source, request_id=request_id)
        self._jobs.put(session.id)
        self.worker.wake()
        return session

    def process_uploads(
        self, imei: str, uploads: Sequence[tuple[str, str, str]], source: str = UPLOADS
    ) -> dict[str, Any]:
        """Grade uploaded photos as a session like a captured one; the answer once graded.

        ``uploads`` are (section, path under the images root, sha256). The session is ``linking``
        until every upload is linked in; only then is it queued for grading.
        """
        imei = self._admit(imei, source, capture=False)
        session = self._create(imei, source, None, "linking")
        done = self._finished[session.id] = threading.Event()
        self.events.emit("session_started", session_id=session.id, source=source, request_id=None)
        shots: dict[str, int] = {}
        try:
            for section, rel, sha256 in uploads:
                shot = shots.setdefault(section, 0)
                shots[section] += 1
                self.grading.link_upload(session, section, shot, rel, sha256)
            self.store.set_status(session.id, "captured")
        except Exception as exc:
            logger.exception("session %s from %s could not be linked", session.id, source)
            reason = f"internal error: {type(exc).__name__}"
            self._fail(session.id, reason)
            self._release(session.id)
            raise SessionFailedError(session.id, reason) from None
        self._jobs.put(session.id)
        self.worker.wake()
        while not done.wait(POLL_S):
            if not self.worker.alive():
                # Stopping (the session resumes on the next start) or the worker died (the watchdog acts).
                raise TriggerRefusedError("stopping", STOPPING)
        final = self.store.get(session.id)
        if final is None or final.result is None:
            raise SessionFailedError(session.id, (final.reason if final else None) or "see the booth log")
        result = final.result
        if self._wait_for_cloud is not None and self.config.cloud.mode == "prefer-cloud":
            cloud = self._wait_for_cloud(session.id, self.config.cloud.prefer_cloud_wait_s)
            if cloud is not None:
                result = with_cloud_analysis(result, cloud)
        return result

    def image_url(self, path: str) -> str:
        api = self.config.api
        base = api.public_base_url
        if not base:
            host = socket.gethostname() if api.host in WILDCARD_HOSTS else api.host
            host = f"[{host}]" if ":" in host else host
            base = f"http://{host}:{api.port}"
        return f"{base.rstrip('/')}/api/images/{quote(path)}"

    def check_imei(self, imei: object) -> str:
        """Validate an IMEI by this booth's policy; raises ``InvalidImeiError``."""
        return validate_imei(imei, luhn=self.config.booth.imei_check == "luhn")

    # -- admission -------------------------------------------------------------------------------

    def _admit(self, imei: str, source: str, capture: bool) -> str:
        imei = self._valid(imei, source)
        if self._stopping.is_set():
            raise TriggerRefusedError("stopping", STOPPING)
        self._refuse_if_disk_low(source)
        with self._lock:
            capturing = capture and self._capturing is not None
            full = self._admitted >= self.config.booth.max_sessions
            if not capturing and not full:
                self._admitted += 1
                return imei
        self.events.emit("trigger_rejected", source=source, code="busy")
        if capturing:
            raise TriggerRefusedError("busy", "Booth is busy with another session")
        raise TriggerRefusedError(
            "busy", f"Booth is busy: {self.config.booth.max_sessions} sessions queued or grading", BUSY_RETRY_AFTER_S
        )

    def _create(self, imei: str, source: str, request_id: str | None, status: Status) -> SessionRecord:
        """The admitted session's row; a disk too full for it refuses the trigger as ``disk_low``."""
        try:
            return self.store.create(imei, source, request_id, status=status)
        except BaseException as exc:
            self._release(None)
            if disk_full(exc):
                self.events.emit("disk_low", free_mb=round(self.retention.free_mb(), 1), source=source)
                raise TriggerRefusedError("disk_low", "Booth disk is full: the session could not be stored") from None
            raise

    def _release(self, session_id: str | None) -> None:
        with self._lock:
            self._admitted -= 1
            if self._capturing == session_id:
                self._capturing = None
        done = self._finished.pop(session_id, None) if session_id else None
        if done is not None:
            done.set()

    # -- the session worker ----------------------------------------------------------------------

    def _step(self) -> float:
        try:
            session_id = self._jobs.get_nowait()
        except queue.Empty:
            self._tend_disk()
            return POLL_S
        self._current = (session_id, time.monotonic())
        try:
            session = self.store.get(session_id)
            if session is not None:
                self._run(session)
        except Exception as exc:
            # The worker must survive anything one session does; the session is failed, kept.
            if disk_full(exc):
                logger.error("session %s failed: %s", session_id, DISK_FULL)
                self._fail(session_id, DISK_FULL)
            else:
                logger.exception("session %s failed unexpectedly", session_id)
                self._fail(session_id, "internal error while grading; see the log")
        finally:
            self._current = None
            self._release(session_id)
            self._show_activity()
        return 0.0

    def _run(self, session: SessionRecord) -> None:
        if session.status != "capturing":
            self.status.set("activity", "grading")
            record = self.grading.grade_and_finish(session, from_camera=session.source != UPLOADS)
        else:
            self.status.set("activity", "capturing")
            try:
                record = self.grading.capture_and_finish(session, self.rig, lambda: self._captured(session.id))
            except (CaptureError, OSError) as exc:
                if disk_full(exc):
                    raise
                # An OSError's text names the photo's path, which holds the IMEI: keep only the cause.
                detail = f"photo could not be stored: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
                reason = f"capture failed: {detail}"
                logger.error("session %s %s", session.id, reason)
                self.store.finish(session.id, "failed", None, reason=reason)
                self.events.emit("capture_failed", session_id=session.id, reason=detail)
                return
        if record.grade is not None:
            self.status.set("last_grade", record.grade)

    def _captured(self, session_id: str) -> None:
        """Every photo of the session is on disk: the booth may take the next trigger."""
        with self._lock:
            if self._capturing == session_id:
                self._capturing = None
        self.status.set("activity", "grading")

    def _show_activity(self) -> None:
        if self._stopping.is_set():
            activity = "stopping"
        elif self._current is not None:
            activity = "grading"
        else:
            activity = "idle"
        self.status.set("activity", activity)

    # -- helpers ---------------------------------------------------------------------------------

    def _fail(self, session_id: str, reason: str) -> None:
        """Finish a session as failed, its images kept, and say so on the events channel.

        On a full disk the reserve is given up for this write; if even that is not enough, the
        failure is kept in memory (new sessions refused meanwhile) and written once there is room.
        """
        for attempt in range(2):
            try:
                self.store.finish(session_id, "failed", None, reason=reason)
                break
            except Exception as exc:
                if not disk_full(exc):
                    raise
                if attempt or not self.reserve.release():
                    logger.error("session %s failed (%s); recorded once the disk has room", session_id, reason)
                    self._unrecorded[session_id] = reason
                    return
        self._unrecorded.pop(session_id, None)
        self.events.emit("failed", session_id=session_id, reason=reason)

    def _tend_disk(self) -> None:
        """While idle: write the failures the full disk held back, take the reserve back, and tell
        of a disk that turned low (or fine) before a customer's trigger meets it."""
        for session_id, reason in list(self._unrecorded.items()):
            self._fail(session_id, reason)
        problem = self.disk_problem()
        if problem is None:
            self.reserve.hold()
        if (problem is not None) != self._disk_was_low:
            self._disk_was_low = problem is not None
            if problem is not None:
                logger.warning("%s: new sessions are refused", problem)
                self.events.emit("disk_low", free_mb=round(self.retention.free_mb(), 1), source="watch")
            self.status.touch()  # disk_problem is a probe: the state is published again

    def disk_problem(self, writing: int = 0, needs_mb: int | None = None) -> str | None:
        """Why the disk stops new sessions (or a write of ``writing`` bytes that must leave
        ``needs_mb`` free, by default ``min_free_mb``), or None (shown by /healthz)."""
        free = self.retention.free_mb() - writing / MB
        needs = self.config.storage.min_free_mb if needs_mb is None else needs_mb
        if self._unrecorded:
            return f"disk full: {len(self._unrecorded)} failed session(s) wait for room to be recorded"
        if free < needs:
            return f"disk low: {free:.0f} MB free, needs {needs} MB"
        return None

    def _valid(self, imei: str, source: str = "arm") -> str:
        try:
            return self.check_imei(imei)
        except InvalidImeiError as exc:
            self.events.emit("trigger_rejected", source=source, code="invalid_imei")
            raise TriggerRefusedError("invalid_imei", str(exc)) from None

    def _refuse_if_disk_low(self, source: str) -> None:
        problem = self.disk_problem()
        if problem is not None:
            self.events.emit("disk_low", free_mb=round(self.retention.free_mb(), 1), source=source)
            raise TriggerRefusedError(
                "disk_low", f"Booth {problem}: sessions resume once delivered data is cleaned up or space is freed"
            )
