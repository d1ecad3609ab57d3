"""Helpers for the cloud mirror tests: real JPEGs, valid IMEIs, a spool with a mirror on it."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config.cloud import CloudConfig
from edge.contract import BoothProcessResponse, BoothSectionAnalysis, ModelInfo
from edge.events import EventBus
from edge.imei import luhn_ok
from edge.mirror import CloudMirror, CloudQueue, cloud_channel
from edge.mirror.channel import CloudResultHook
from edge.mirror.client import CloudClient
from edge.spool.db import Database
from edge.spool.outbox import Outbox
from edge.spool.sessions import SessionRecord, SessionStore
from edge.status import StatusBoard

SIM_KEY = "sim-test-key"
# The booth's scores in a harness session: different per section, so a swapped comparison shows.
BOOTH_SCORES = {"front": 80, "back": 65}
# Short backoff so a test sees many retry rounds in seconds. Reads get 10 s: on a loaded machine a
# shorter wait re-sends answers that were merely late, and tests that count requests go wrong.
# For tests of answers that come too late: the client gives up after this, the fault waits longer.
SHORT_READ_S = 3.0
FAST: dict[str, Any] = {
    "connect_timeout_s": 2.0,
    "read_timeout_s": 10.0,
    "write_timeout_s": 10.0,
    "pool_timeout_s": 2.0,
    "backoff_base_s": 0.2,
    "backoff_cap_s": 1.0,
    "retry_after_max_s": 5.0,
}


def imei(n: int) -> str:
    """The n-th valid IMEI of a test series (15 digits, Luhn check digit)."""
    body = f"35693803{n:06d}"
    return next(body + str(d) for d in range(10) if luhn_ok(body + str(d)))


def jpeg(seed: int, width: int = 320, height: int = 240) -> bytes:
    """A real JPEG: a smooth surface with a few scratch-like lines, different per seed."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 120 + seed % 60, np.uint8)
    for _ in range(3 + seed % 5):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(image, p1, p2, (230, 230, 230), 1)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def booth_result(session: SessionRecord, scores: dict[str, int], status: str = "graded") -> dict[str, Any]:
    response = BoothProcessResponse(
        sessionId=session.id,
        imei=session.imei,
        analysis={s: BoothSectionAnalysis(score=v, issues=[], recommendations=[]) for s, v in scores.items()},
        images=[],
        status=status,  # type: ignore[arg-type]
        grade="B",
        model=ModelInfo(name="test", version="0", sha256="0" * 64, runtime="none"),
        timings_ms={"total": 1.0},
        booth_id="test-booth",
        time="2024-01-01T00:00:00.000Z",
    )
    return response.model_dump(mode="json")


class MirrorHarness:
    """A real spool (SQLite file, image files) with a CloudMirror on it, as the booth wires it."""

    def __init__(
        self,
        state: Path,
        base_url: str,
        key: str = SIM_KEY,
        client: CloudClient | None = None,
        on_cloud_result: CloudResultHook | None = None,
        clock: Callable[[], float] = time.time,
        **cloud: Any,
    ) -> None:
        self.state = state
        self.db = Database(state / "spool.db")
        self.events = EventBus("test-booth")
        self.seen: list[dict[str, Any]] = []
        self.events.subscribe(self.seen.append)
        self.status = StatusBoard()
        self.config = CloudConfig(base_url=base_url, api_key=key, **{**FAST, **cloud})
        self.outbox = Outbox(self.db, self.events, [cloud_channel(self.config, threading.Event())], clock=clock)
        self.queue = CloudQueue(self.db, self.outbox, enabled=CloudMirror.wanted(self.config))
        self.store = SessionStore(self.db, state / "images", on_finished=[self.queue.enqueue])
        self.status.probe("cloud_outbox_depth", self.queue.depth)
        self.mirror = CloudMirror(
            self.config,
            self.queue,
            self.store,
            self.events,
            self.status,
            on_cloud_result=on_cloud_result,
            client=client,
        )

    def start(self) -> MirrorHarness:
        self.mirror.start()
        return self

    def close(self) -> None:
        self.mirror.stop()
        self.db.close()

    def session(self, imei_: str, shots: dict[str, int] | None = None, status: str = "graded") -> SessionRecord:
        """A finished session with real JPEGs on disk, stored the way the booth stores one."""
        shots = shots or {"front": 2, "back": 1}
        record = self.store.create(imei_, "test", status="captured")
        seed = int(imei_[-6:])
        for section, count in shots.items():
            for shot in range(count):
                self.store.add_image(record, section, shot, jpeg(seed + shot + len(section)))
        scores = {section: BOOTH_SCORES.get(section, 50) for section in shots}
        return self.store.finish(record.id, status, booth_result(record, scores, status), grade="B")  # type: ignore[arg-type]

    def cloud(self, session_id: str) -> dict[str, Any] | None:
        record = self.store.get(session_id)
        return record.cloud if record else None

    def events_of(self, type_: str) -> list[dict[str, Any]]:
        return [event for event in self.seen if event["type"] == type_]

    def cloud_status(self) -> dict[str, Any]:
        return self.status.snapshot()["cloud"]

    def uploaded_images(self, session_id: str) -> int:
        row = self.db.connection().execute(
            "SELECT COUNT(*) FROM cloud_uploads u JOIN outbox o ON o.id = u.outbox_id"
            " WHERE o.session_id = ? AND u.upload_json IS NOT NULL",
            (session_id,),
        ).fetchone()
        return int(row[0])


def images_of(db: Database, session_id: str) -> int:
    conn: sqlite3.Connection = db.connection()
    return int(
        conn.execute("SELECT COUNT(*) FROM images WHERE session_id = ? AND kind = 'original'", (session_id,))
        .fetchone()[0]
    )
