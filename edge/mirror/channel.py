"""The cloud channel of the outbox: one row per session, and a side table of its photos' uploads.

A graded, retake or review session is enqueued by an ``on_session_finished`` hook inside the very
transaction that stores the booth's result, so no finished session can miss the cloud. Each
photo's upload answer is committed as soon as it arrives and reused on every retry: after a crash,
a photo whose URL is known is never uploaded again. ``sends`` counters are committed before each
request, so the cloud's side can be checked against them (a request whose answer was lost may
have been stored there). Bound, retries, order and pruning are the outbox's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from edge.config.cloud import CloudConfig
from edge.contract import ProcessResponse, UploadResponse
from edge.spool.db import Database
from edge.spool.outbox import Channel, Outbox
from edge.spool.sessions import SessionRecord, SessionStore
from edge.timefmt import utc_iso

logger = logging.getLogger(__name__)

CHANNEL = "cloud"
DEPTH_KEY = "cloud_outbox_depth"  # in the status, beside the MQTT outbox's
COMPONENT = "cloud_outbox"
MIRRORED_STATUSES = frozenset({"graded", "retake", "review"})

MIGRATIONS = (
    # v1: the cloud's own outbox, before there was one outbox for every channel.
    (
        """
        CREATE TABLE IF NOT EXISTS cloud_sessions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL UNIQUE REFERENCES sessions (id) ON DELETE CASCADE,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            process_sends INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_failure_at REAL,
            last_status INTEGER,
            last_error TEXT,
            key_fingerprint TEXT,
            enqueued_at REAL NOT NULL,
            finished_at REAL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS cloud_images (
            image_id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES cloud_sessions (session_id) ON DELETE CASCADE,
            section TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            sends INTEGER NOT NULL DEFAULT 0,
            upload_json TEXT,
            uploaded_at REAL
        )
        """,
    ),
    # v2: sessions are rows of the outbox (moved there by its own migration); the photos follow.
    (
        """
        CREATE TABLE cloud_uploads (
            image_id INTEGER PRIMARY KEY,
            outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
            section TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            sends INTEGER NOT NULL DEFAULT 0,
            upload_json TEXT,
            uploaded_at REAL
        )
        """,
        "CREATE INDEX cloud_uploads_row ON cloud_uploads (outbox_id, image_id)",
        "INSERT INTO cloud_uploads (image_id, outbox_id, section, path, sha256, sends, upload_json, uploaded_at)"
        " SELECT i.image_id, o.id, i.section, i.path, i.sha256, i.sends, i.upload_json, i.uploaded_at"
        " FROM cloud_images i JOIN outbox o ON o.channel = 'cloud' AND o.session_id = i.session_id",
        "DROP TABLE cloud_images",
        "DROP TABLE cloud_sessions",
    ),
)

CloudResultHook = Callable[[sqlite3.Connection, str, dict[str, Any]], None]


def cloud_channel(config: CloudConfig, wake: threading.Event) -> Channel:
    return Channel(
        CHANNEL,
        max_rows=config.outbox_max_sessions,
        policy=config.outbox_full_policy,
        backoff_base_s=config.backoff_base_s,
        backoff_cap_s=config.backoff_cap_s,
        retry_after_max_s=config.retry_after_max_s,
        keep_finished_s=config.outbox_keep_done_days * 86400,
        # Sessions are independent: one that keeps failing must not hold back the rest.
        ordered=False,
        wake=wake,
    )


@dataclass(frozen=True)
class OutboxImage:
    image_id: int
    section: str
    path: str
    sha256: str
    sends: int
    upload: UploadResponse | None

    @property
    def filename(self) -> str:
        """The name the booth gave the photo, without the spool's ``<epoch-ms>_`` prefix."""
        name = PurePosixPath(self.path).name
        prefix, sep, rest = name.partition("_")
        return rest if sep and prefix.isdigit() and rest else name


@dataclass(frozen=True)
class CloudJob:
    row_id: int
    session_id: str
    imei: str
    attempts: int
    images: list[OutboxImage]


def key_fingerprint(key: str) -> str:
    """Enough to notice that the key changed, too short to say anything about the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def compare(booth: dict[str, Any] | None, cloud: ProcessResponse) -> dict[str, dict[str, Any]]:
    """Per section: the booth's score, the cloud's, and cloud minus booth where both graded it."""
    booth_analysis: dict[str, Any] = (booth or {}).get("analysis") or {}
    rows: dict[str, dict[str, Any]] = {}
    for section in sorted(set(booth_analysis) | set(cloud.analysis)):
        mine = booth_analysis.get(section) or {}
        graded = bool(mine) and mine.get("status", "graded") == "graded"
        booth_score = mine.get("score") if graded else None
        theirs = cloud.analysis.get(section)
        cloud_score = theirs.score if theirs is not None else None
        rows[section] = {
            "booth": booth_score,
            "booth_status": mine.get("status", "graded") if mine else None,
            "cloud": cloud_score,
            "difference": cloud_score - booth_score
            if cloud_score is not None and booth_score is not None
            else None,
        }
    return rows


class CloudQueue:
    """The cloud channel's rows and their photos; ``enabled`` is False when the mirror is off."""

    def __init__(self, db: Database, outbox: Outbox, enabled: bool) -> None:
        self.db = db
        self.outbox = outbox
        self.enabled = enabled
        db.migrate(COMPONENT, MIGRATIONS)

    def enqueue(self, conn: sqlite3.Connection, record: SessionRecord) -> None:
        """An ``on_session_finished`` hook: runs inside the transaction that stores the result."""
        if not self.enabled or record.status not in MIRRORED_STATUSES:
            return
        images = conn.execute(
            "SELECT id, section, path, sha256 FROM images WHERE session_id = ? AND kind = 'original' ORDER BY id",
            (record.id,),
        ).fetchall()
        if not images:
            logger.warning("session %s has no original images; nothing to mirror", record.id)
            return
        row_id = self.outbox.enqueue(conn, CHANNEL, record.id, "session")
        if row_id is None:
            return
        conn.executemany(
            "INSERT INTO cloud_uploads (image_id, outbox_id, section, path, sha256) VALUES (?, ?, ?, ?, ?)",
            [(row["id"], row_id, row["section"], row["path"], row["sha256"]) for row in images],
        )

    def next_job(self, wanted: frozenset[str] = frozenset()) -> CloudJob | None:
        """The oldest due session; sessions someone waits for first."""
        rows = self.outbox.claim_due(CHANNEL, 1, first=wanted)
        if not rows:
            return None
        row = rows[0]
        conn = self.db.connection()
        imei = conn.execute("SELECT imei FROM sessions WHERE id = ?", (row.session_id,)).fetchone()[0]
        images = [
            OutboxImage(
                r["image_id"], r["section"], r["path"], r["sha256"], r["sends"],
                UploadResponse.model_validate_json(r["upload_json"]) if r["upload_json"] else None,
            )
            for r in conn.execute("SELECT * FROM cloud_uploads WHERE outbox_id = ? ORDER BY image_id", (row.id,))
        ]
        return CloudJob(row.id, str(row.session_id), imei, row.attempts, images)

    def count_upload_send(self, image_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE cloud_uploads SET sends = sends + 1 WHERE image_id = ?", (image_id,))

    def store_upload(self, image_id: int, answer: UploadResponse) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE cloud_uploads SET upload_json = ?, uploaded_at = ? WHERE image_id = ?",
                (answer.model_dump_json(), time.time(), image_id),
            )

    def store_result(
        self, store: SessionStore, job: CloudJob, answer: ProcessResponse, on_cloud_result: CloudResultHook | None
    ) -> dict[str, Any]:
        """The cloud's answer beside the booth's, the row acknowledged, and the MQTT enqueue: one commit."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT result_json FROM sessions WHERE id = ?", (job.session_id,)).fetchone()
            booth = json.loads(row[0]) if row and row[0] else None
            comparison = compare(booth, answer)
            differences = [abs(r["difference"]) for r in comparison.values() if r["difference"] is not None]
            # The cloud's answer as given (a store system parses it as the contract's process answer),
            # then the booth's comparison beside it.
            payload: dict[str, Any] = {
                **answer.model_dump(mode="json"),
                "comparison": comparison,
                "max_abs_difference": max(differences) if differences else None,
                "mirrored_at": utc_iso(),
            }
            store.set_cloud(job.session_id, payload, conn=conn)
            self.outbox.ack([job.row_id], conn)
            if on_cloud_result is not None:
                on_cloud_result(conn, job.session_id, payload)
        return payload

    def sends(self, session_id: str) -> dict[str, int]:
        """Requests started for this session, answered or not (uploads, process)."""
        row_id = self.outbox.row_of(CHANNEL, session_id)
        if row_id is None:
            return {"uploads": 0, "process": 0}
        uploads = self.db.connection().execute(
            "SELECT COALESCE(SUM(sends), 0) FROM cloud_uploads WHERE outbox_id = ?", (row_id,)
        ).fetchone()[0]
        return {"uploads": int(uploads), "process": self.outbox.sends(row_id)}

    def process_resends(self) -> int:
        """Process calls sent again for a session whose earlier call got no answer (rows kept)."""
        row = self.db.connection().execute(
            "SELECT COALESCE(SUM(sends - 1), 0) FROM outbox WHERE channel = ? AND sends > 1", (CHANNEL,)
        ).fetchone()
        return int(row[0])

    def state_of(self, session_id: str) -> str | None:
        return self.outbox.state_of(CHANNEL, session_id)

    def pending_session_ids(self) -> set[str]:
        rows = self.db.connection().execute(
            "SELECT session_id FROM outbox WHERE channel = ? AND state = 'pending'", (CHANNEL,)
        )
        return {row[0] for row in rows}

    def depth(self) -> int:
        return self.outbox.depth(CHANNEL)

    def counts(self) -> dict[str, int]:
        return self.outbox.counts(CHANNEL)

    def dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.outbox.dead_letters(CHANNEL, limit)
