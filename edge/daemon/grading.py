"""Grading one session, from the cameras' frames as they are shot or from its stored photos; its
overlays and result stored.

Runs only on the booth's session worker, so at most one session is graded at a time and only
its threads hold its photos in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import PurePosixPath

import numpy as np

from edge.capture.frames import JpegEncoder
from edge.capture.rig import CaptureRig
from edge.config.root import AppConfig
from edge.contract import BoothProcessResponse, ProcessedImage
from edge.daemon.feed import ShotFeed
from edge.events import EventBus
from edge.grade.decode import ImageError, decode_whole
from edge.grade.pipeline import Grader, Photo, SessionGrade
from edge.grade.reference import load_reference
from edge.spool.files import fsync_dir
from edge.spool.reserve import disk_full
from edge.spool.sessions import ImageRecord, SessionRecord, SessionStore, image_path
from edge.timefmt import utc_iso

logger = logging.getLogger(__name__)

UrlOf = Callable[[str], str]


class SessionGrading:
    def __init__(self, config: AppConfig, store: SessionStore, events: EventBus, grader: Grader, url_of: UrlOf) -> None:
        self.config = config
        self.store = store
        self.events = events
        self.grader = grader
        self.url_of = url_of
        self._empty: dict[str, np.ndarray] = {}

    def load_references(self) -> None:
        """Each section's empty-booth photo, by its camera (at start, and after a calibration)."""
        state = self.config.booth.state_dir
        by_camera = {name: load_reference(state, name) for name in self.config.cameras}
        self._empty = {
            section: image
            for section, rig in self.config.rig.sections.items()
            if (image := by_camera.get(rig.camera)) is not None
        }
        if self._empty:
            logger.info("empty-booth references for %s", ", ".join(sorted(self._empty)))

    def capture_and_finish(
        self, session: SessionRecord, rig: CaptureRig, on_stored: Callable[[], None]
    ) -> SessionRecord:
        """Shoot the session and grade its frames as they come, storing each photo beside grading.

        Raises CaptureError when a camera fails and OSError when a photo cannot be stored: the
        session is not complete, and the caller fails it. ``on_stored`` runs once every photo is on
        disk; from then on a crash regrades the session from its stored photos.
        """
        started = time.perf_counter()

        def stored() -> None:
            self.store.set_status(session.id, "grading")
            on_stored()

        storage = self.config.storage
        with (
            JpegEncoder(storage.jpeg_quality, storage.jpeg_threads) as encoder,
            ShotFeed(rig, self.store, session, encoder, self.config.grading.decode_long_side, stored) as feed,
        ):
            grade = self.grader.grade(feed, self._mm_per_px(), empty=self._empty)
            originals = feed.stored()
        overlays = self._store_overlays(session, grade)
        # The frames were brought to the grading scale on the feed's thread: that is their decode.
        timings = {
            "capture": feed.capture_ms,
            "decode": feed.reduce_ms,
            "store": feed.store_ms,
            "session": (time.perf_counter() - started) * 1000,
        }
        return self._finish(session, originals, overlays, grade, timings)

    def grade_and_finish(self, session: SessionRecord, from_camera: bool) -> SessionRecord:
        """Grade a session from its stored photos: an upload's, or one a restart interrupted.

        Photos the cameras shot (``from_camera``) are decoded whole and reduced as their frames
        were, so a restart gives the answer grading the frames gave or would have given; uploads
        keep the cheaper reduced decode.
        """
        started = time.perf_counter()
        self.store.set_status(session.id, "grading")
        # Overlays of a grading cut short by a crash: this grading writes its own.
        stale = self.store.delete_images(session.id, "overlay")
        if stale:
            logger.warning("session %s: removed %d overlay(s) left by an interrupted grading", session.id, stale)
        originals = self.store.images(session.id, "original")
        try:
            if not originals:
                raise ImageError("session", 0, "no images were captured")
            # One stored photo in memory at a time: the grader reads them as it goes. A camera's
            # photo is decoded whole (37 MB at 12 MP): prepared one at a time, the session stays
            # within the memory the frames path takes.
            photos = ((image.section, self._read(image, from_camera)) for image in originals)
            grade = self.grader.grade(
                photos, self._mm_per_px(), empty=self._empty, prepare_threads=1 if from_camera else None
            )
            overlays = self._store_overlays(session, grade)
        except (ImageError, OSError) as exc:
            if disk_full(exc):
                raise  # the booth fails it as a full disk, with the room it keeps for that
            # An OSError's text names the file, whose path holds the IMEI: keep only the cause.
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = f"images cannot be graded: {detail}"
            logger.error("session %s %s", session.id, reason)
            record = self.store.finish(session.id, "failed", None, reason=reason)
            self.events.emit("capture_failed", session_id=session.id, reason=detail)
            return record
        return self._finish(session, originals, overlays, grade, {"session": (time.perf_counter() - started) * 1000})

    def _store_overlays(self, session: SessionRecord, grade: SessionGrade) -> list[ImageRecord]:
        return self.store.add_images(session, grade.overlays, kind="overlay")

    def _finish(
        self,
        session: SessionRecord,
        originals: list[ImageRecord],
        overlays: list[ImageRecord],
        grade: SessionGrade,
        timings: dict[str, float],
    ) -> SessionRecord:
        """The result, built and committed (with its outbox rows, in one transaction)."""

        def described(image: ImageRecord) -> ProcessedImage:
            return ProcessedImage(url=self.url_of(image.path), section=image.section, path=image.path, size=image.size)

        # The grader's stages, and the session's own: capture and storing beside grading (from
        # frames), and the whole from the first shot or the first stored photo read to the result.
        timings = {**grade.timings_ms, **{k: round(v, 1) for k, v in timings.items()}}
        response = BoothProcessResponse(
            sessionId=session.id,
            imei=session.imei,
            analysis=grade.analysis,
            images=[described(image) for image in originals],
            status=grade.status,
            grade=grade.grade,
            reason=grade.reason,
            provisional_grade=grade.provisional_grade,
            model=self.grader.info,
            timings_ms=timings,
            booth_id=self.config.booth.id,
            time=utc_iso(),
            overlays=[described(image) for image in overlays],
        )
        result = response.model_dump(mode="json")
        record = self.store.finish(
            session.id, grade.status, result, grade=grade.grade, reason=grade.reason,
            provisional_grade=grade.provisional_grade,
        )  # fmt: skip
        if grade.status == "retake":
            self.events.emit("retake", session_id=session.id, reason=grade.reason)
        elif grade.status == "review":
            self.events.emit(
                "review", session_id=session.id, provisional_grade=grade.provisional_grade, reason=grade.reason
            )
        else:
            self.events.emit("graded", session_id=session.id, grade=grade.grade, total_ms=grade.timings_ms.get("total"))
        logger.info("session %s %s grade=%s", session.id, grade.status, grade.grade or grade.provisional_grade)
        return record

    def link_upload(self, session: SessionRecord, section: str, shot: int, rel: str, sha256: str) -> None:
        """Hard-link an upload into the session: one upload can serve several sessions, and
        retention of uploads never pulls a photo from under a session."""
        source = self.store.images_root / rel
        # Keep the upload's own suffix: a PNG stays a PNG when served or mirrored.
        suffix = PurePosixPath(rel).suffix or ".jpg"
        name = f"{section}-{shot + 1}{suffix}"
        target_rel = self.store.journal.claim(lambda ms: [image_path(session.imei, section, name, ms)])[0]
        target = self.store.images_root / target_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
        fsync_dir(target.parent)
        # The upload's checksum was taken when it was written; grading verifies it on read.
        self.store.register_image(session.id, section, shot, "original", target_rel, sha256, target.stat().st_size)

    def _read(self, image: ImageRecord, whole: bool) -> Photo:
        data = self.store.read_image(image)
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise ImageError(image.section, image.shot, "stored image is damaged (checksum mismatch)")
        return decode_whole(data, image.section, image.shot) if whole else data

    def _mm_per_px(self) -> dict[str, float]:
        scales = {}
        for section, rig in self.config.rig.sections.items():
            scale = self.config.cameras[rig.camera].mm_per_px
            if scale is not None:
                scales[section] = scale
        return scales
