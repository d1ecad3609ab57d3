"""The grading pipeline: decode -> quality gate -> locate -> infer -> defects -> score and grade."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge.config.model import GradingConfig, ModelConfig
from edge.contract import BoothSectionAnalysis, Defect, Grade, ModelInfo
from edge.grade.decode import Decoded, decode, reduce_frame
from edge.grade.describe import describe, mm_text, surface_name
from edge.grade.detect import DEFECT_KINDS, Geometry, find_defects
from edge.grade.locate import Location, canonical_transform, locate, quad_sides
from edge.grade.overlay import overlay_base, render_overlay
from edge.grade.quality import check_device, check_frame
from edge.grade.runtime import Runtime
from edge.grade.scale import device_grade, face_grade, shattered

log = logging.getLogger(__name__)

STAGES = ("decode", "preprocess", "inference", "postprocess")
# A file's bytes (JPEG or PNG, from the spool or an upload), a camera's frame (uint8 BGR), or a
# frame already brought to the grading scale by ``reduce_frame``.
Photo = bytes | np.ndarray | Decoded


@dataclass
class SessionGrade:
    """A session's answer. ``review``: a crack on weak evidence; ``grade`` stays None and the grade
    it would have, ``provisional_grade``, waits for a technician."""

    analysis: dict[str, BoothSectionAnalysis]
    grade: Grade | None
    status: Literal["graded", "retake", "review"]
    reason: str | None
    overlays: list[tuple[str, int, bytes]]
    timings_ms: dict[str, float]
    provisional_grade: Grade | None = None


@dataclass
class _Shot:
    section: str
    index: int
    reason: str | None = None
    defects: list[Defect] = field(default_factory=list)
    geom: Geometry | None = None


@dataclass
class _Prepared:
    """A photo decoded, gated, located and warped, ready for the model; the photo itself is kept
    only at the overlay's size."""

    overlay: np.ndarray
    overlay_scale: float
    scale: int
    loc: Location | None
    to_canon: np.ndarray | None
    crop: np.ndarray | None
    reason: str | None
    decode_ms: float
    preprocess_ms: float


class Grader:
    """Loads and verifies the model once; ``grade`` grades one session's photos."""

    def __init__(self, model: ModelConfig, grading: GradingConfig) -> None:
        self._runtime = Runtime(model)
        self._cfg = grading
        meta = self._runtime.meta
        self._size = meta.canonical_size
        self._thresholds = [self._runtime.thresholds[k] for k in DEFECT_KINDS]
        self._crack_confirm = self._runtime.thresholds.get("crack_confirm", self._runtime.thresholds["crack"])
        # The model's label order may differ from DEFECT_KINDS; reorder its output once per image.
        self._order = [0, *(meta.labels.index(k) for k in DEFECT_KINDS)]
        self.info: ModelInfo = self._runtime.info
        self.macs = meta.macs

    def grade(
        self,
        photos: Iterable[tuple[str, Photo]],
        mm_per_px: Mapping[str, float] | None = None,
        progress: Callable[[int], None] | None = None,
        empty: Mapping[str, np.ndarray] | None = None,
        prepare_threads: int | None = None,
    ) -> SessionGrade:
        """Grade photos given as (section, photo) in shot order; raises ImageError on bad data.

        A photo is a file's bytes (JPEG or PNG) or a camera's frame (uint8 BGR). ``photos`` is read
        one at a time as grading goes, so it may be a camera still shooting the session's later
        photos. ``mm_per_px`` and ``empty`` (the empty booth, ``edge.grade.reference``) are per
        section, from its camera's calibration. ``progress(done)`` is called after each photo.
        ``prepare_threads`` overrides the config's for photos that are heavy to hold.
        """
        backgrounds = empty or {}
        start = time.perf_counter()
        timings = dict.fromkeys(STAGES, 0.0)
        shots: dict[str, list[_Shot]] = {}
        overlays: list[tuple[str, int, bytes]] = []
        source = iter(photos)

        turn = 0
        taking = threading.Condition()

        def pull(k: int) -> tuple[_Shot, _Prepared] | None:
            # The k-th call takes the k-th photo: the source is read in shot order (it may be a
            # camera), and the photos are prepared side by side.
            nonlocal turn
            with taking:
                taking.wait_for(lambda: turn == k)
                try:
                    item = next(source, None)
                    if item is None:
                        return None
                    section, photo = item
                    shot = _Shot(section, len(shots.setdefault(section, [])))
                    shots[section].append(shot)
                finally:
                    turn += 1
                    taking.notify_all()
            return shot, self._prepare(shot, photo, backgrounds.get(section))

        # Stages overlap: the next photos are read, located and warped on threads while this one
        # goes through the model, its defects and its overlay here. OpenCV and the interpreter
        # release the GIL, and preparing costs several times the rest, so it gets the threads;
        # ``prepare_threads`` + 1 photos are held at once however many the session has.
        depth = prepare_threads or self._cfg.prepare_threads
        with ThreadPoolExecutor(depth, thread_name_prefix="grade-prepare") as preparing:
            ahead = deque(preparing.submit(pull, k) for k in range(depth))
            taken = depth
            while (item := ahead.popleft().result()) is not None:
                ahead.append(preparing.submit(pull, taken))
                taken += 1
                shot, prepared = item
                timings["decode"] += prepared.decode_ms
                timings["preprocess"] += prepared.preprocess_ms
                probs = self._infer(prepared, timings)
                blob, ms = self._finish(shot, prepared, probs, mm_per_px)
                del item, prepared  # not held while the next photo is waited for
                timings["postprocess"] += ms
                overlays.append((shot.section, shot.index, blob))
                if progress is not None:
                    progress(len(overlays))
        t = time.perf_counter()
        analysis = {section: self._section(section, group) for section, group in shots.items()}
        retakes = {s: a.reason for s, a in analysis.items() if a.status == "retake"}
        cracks = [(s, d) for s, a in analysis.items() for d in a.defects if d.kind == "crack"]
        # One crack on strong evidence, or a web of cracks (a shattered face), settles that the
        # glass is broken; only when every crack is weak and alone is there a doubt for a person.
        settled = any(d.confidence >= self._crack_confirm for _, d in cracks) or any(
            shattered(a.defects, self._cfg) for a in analysis.values()
        )
        doubts = [] if settled else [
            f"possible crack across {d.place} of {surface_name(s)}, {mm_text(d.length_mm)}: check by eye"
            for s, d in cracks
        ]  # fmt: skip
        grade: Grade | None = None
        provisional: Grade | None = None
        reason: str | None = None
        status: Literal["graded", "retake", "review"] = "graded"
        if retakes:
            status, reason = "retake", "; ".join(f"{s}: {r}" for s, r in retakes.items())
        elif doubts:
            # A false crack costs the customer a grade they did not deserve: weak evidence goes
            # to a person, and the grade it would give waits beside the result, not in it.
            status, reason = "review", "; ".join(doubts)
            provisional = device_grade(face_grade(a.defects, self._cfg) for a in analysis.values())
        else:
            grade = device_grade(face_grade(a.defects, self._cfg) for a in analysis.values())
        timings["postprocess"] += (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - start) * 1000
        log.info("graded %d photos: %s %s in %.0f ms", len(overlays), status, grade or reason, timings["total"])
        timings = {k: round(v, 1) for k, v in timings.items()}
        return SessionGrade(analysis, grade, status, reason, overlays, timings, provisional)

    def gate(self, photo: Photo, empty: np.ndarray | None = None) -> str | None:
        """The quality gate's verdict on one photo (exposure, device found, sharpness, glare), as
        grading decides it: a retake's reason, or None when the photo would be graded."""
        return self._prepare(_Shot("gate", 0), photo, empty).reason

    def _prepare(self, shot: _Shot, photo: Photo, empty: np.ndarray | None) -> _Prepared:
        """Decode, gate, locate and warp one photo; raises ImageError when it cannot be decoded."""
        cfg = self._cfg
        t0 = time.perf_counter()
        if isinstance(photo, Decoded):
            dec = photo
        elif isinstance(photo, np.ndarray):
            dec = reduce_frame(photo, cfg.decode_long_side)
        else:
            dec = decode(photo, shot.section, shot.index, cfg.decode_long_side)
        t1 = time.perf_counter()
        image = dec.image
        loc: Location | None = None
        to_canon = crop = None
        reason = check_frame(image, cfg)
        if reason is None:
            loc = locate(image, cfg.min_device_area, cfg.device_aspect, empty)
            if loc is None:
                reason = "no device found: place the phone flat in the middle of the booth"
        if loc is not None:
            to_canon = canonical_transform(loc.quad, self._size, self._runtime.meta.margin)
            crop = cv2.warpAffine(
                image, to_canon[:2], self._size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            reason = reason or check_device(crop, cfg, quad_sides(loc.quad)[0]).reason
        base, f = overlay_base(image, cfg.overlay_long_side)
        t2 = time.perf_counter()
        return _Prepared(base, f, dec.scale, loc, to_canon, crop, reason, (t1 - t0) * 1000, (t2 - t1) * 1000)

    def _infer(self, prep: _Prepared, timings: dict[str, float]) -> np.ndarray | None:
        """The model's cell probabilities, in DEFECT_KINDS order, for a photo that passed the gate."""
        if prep.reason is not None or prep.crop is None:
            return None
        t = time.perf_counter()
        probs = self._runtime.run(prep.crop)[..., self._order]
        timings["inference"] += (time.perf_counter() - t) * 1000
        return probs

    def _finish(
        self, shot: _Shot, prep: _Prepared, probs: np.ndarray | None, mm_per_px: Mapping[str, float] | None
    ) -> tuple[bytes, float]:
        """Find the defects and draw the overlay of one photo; the overlay and the ms taken."""
        t = time.perf_counter()
        shot.reason = prep.reason
        if probs is not None and prep.crop is not None and prep.loc is not None:
            shot.geom = self._geometry(prep.loc, (mm_per_px or {}).get(shot.section), prep.scale)
            shot.defects = find_defects(probs, self._thresholds, prep.crop, shot.geom, self._cfg, shot.index)
        blob = render_overlay(
            prep.overlay, prep.overlay_scale, None if prep.loc is None else prep.loc.quad, prep.to_canon, self._size,
            shot.defects, None if prep.reason is None else f"RETAKE: {prep.reason}", self._cfg.overlay_quality,
        )  # fmt: skip
        return blob, (time.perf_counter() - t) * 1000

    def _geometry(self, loc: Location, mm_per_px: float | None, decode_scale: int) -> Geometry:
        long_px, short_px = quad_sides(loc.quad)
        # A calibrated camera gives mm per raw pixel; otherwise assume a typical phone length.
        mm = mm_per_px * decode_scale if mm_per_px else self._cfg.nominal_device_length_mm / long_px
        m = self._runtime.meta.margin
        w, h = self._size
        return Geometry(
            mm_x=float(short_px * mm * (1 + 2 * m) / w),
            mm_y=float(long_px * mm * (1 + 2 * m) / h),
            margin=m,
            stride=self._runtime.meta.stride,
        )

    def _section(self, section: str, group: list[_Shot]) -> BoothSectionAnalysis:
        good = [s for s in group if s.reason is None]
        if not good:
            reason = group[0].reason
            return BoothSectionAnalysis(
                score=0, issues=[], recommendations=[f"retake {section}: {reason}"], status="retake", reason=reason
            )
        defects = self._merge(good)
        score, issues, recs = describe(section, defects, self._cfg)
        return BoothSectionAnalysis(score=score, issues=issues, recommendations=recs, defects=defects)

    def _merge(self, good: list[_Shot]) -> list[Defect]:
        """One defect per kind and place across shots: the worst evidence wins."""
        w, h = self._size
        candidates = [(d, s.geom) for s in good for d in s.defects if s.geom is not None]
        candidates.sort(key=lambda p: (p[0].severity == "deep", p[0].length_mm, p[0].area_mm2), reverse=True)
        kept: list[Defect] = []
        for d, g in candidates:
            near = False
            for k in kept:
                if k.kind != d.kind:
                    continue
                gap_x = max(0.0, max(d.box[0], k.box[0]) - min(d.box[2], k.box[2])) * w * g.mm_x
                gap_y = max(0.0, max(d.box[1], k.box[1]) - min(d.box[3], k.box[3])) * h * g.mm_y
                if max(gap_x, gap_y) <= self._cfg.merge_distance_mm:
                    near = True
                    break
            if not near:
                kept.append(d)
        return kept
