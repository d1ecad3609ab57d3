"""The persistent cloud outbox: per session, per image, in the spool's SQLite.

A graded or retake session is enqueued by a result hook inside the very transaction that stores
the booth's result, so no finished session can miss the cloud. Each image's upload answer is
committed as soon as it arrives and reused on every retry: after a crash, an image whose URL is
known is never uploaded again. ``sends`` counters are committed before each request, so the cloud's
side can be checked against them (a request whose answer was lost may have been stored there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from edge.config.cloud import CloudConfig
from edge.contract import ProcessResponse, UploadResponse
from edge.events import EventBus
from edge.spool.sessions import SessionRecord, SessionStore
from edge.timefmt import utc_iso

logger = logging.getLogger(__name__)

COMPONENT = "cloud_outbox"
MIRRORED_STATUSES = frozenset({"graded", "retake"})
AUTH_STATUSES = frozenset({401, 403})
ERROR_KEPT_CHARS = 500

MIGRATIONS = (
    """
    CREATE TABLE cloud_sessions (
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
    );
    CREATE INDEX cloud_sessions_due ON cloud_sessions (state, next_attempt_at, seq);
    CREATE TABLE cloud_images (
        image_id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES cloud_sessions (session_id) ON DELETE CASCADE,
        section TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        sends INTEGER NOT NULL DEFAULT 0,
        upload_json TEXT,
        uploaded_at REAL
    );
    CREATE INDEX cloud_images_session ON cloud_images (session_id, image_id)
    """,
)

_DUE = (
    "SELECT c.session_id, c.attempts, s.imei FROM cloud_sessions c JOIN sessions s ON s.id = c.session_id"
    " WHERE c.state = 'pending' AND c.next_attempt_at <= ?"
)

CloudResultHook = Callable[[sqlite3.Connection, str, dict[str, Any]], None]


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
class OutboxSession:
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


class CloudOutbox:
    def __init__(
        self, store: SessionStore, config: CloudConfig, events: EventBus, enabled: bool = True
    ) -> None:
        self.store = store
        self.db = store.db
        self.config = config
        self.events = events
        self.enabled = enabled
        self.db.migrate(COMPONENT, MIGRATIONS)
        # Events decided inside the result transaction go out after it commits (store listener).
        self._on_enqueued: list[Callable[[], None]] = []
        store.add_result_hook(self._enqueue)

    def on_enqueued(self, callback: Callable[[], None]) -> None:
        self._on_enqueued.append(callback)

    # -- enqueue (inside the result's transaction) -------------------------------------------------

    def _enqueue(self, conn: sqlite3.Connection, record: SessionRecord) -> None:
        if not self.enabled or record.status not in MIRRORED_STATUSES:
            return
        images = conn.execute(
            "SELECT id, section, path, sha256 FROM images"
            " WHERE session_id = ? AND kind = 'original' ORDER BY id",
            (record.id,),
        ).fetchall()
        if not images:
            logger.warning("session %s has no original images; nothing to mirror", record.id)
            return
        now = time.time()
        events: list[tuple[str, dict[str, Any]]] = []
        state = "pending"
        if self.depth(conn) >= self.config.outbox_max_sessions:
            if self.config.outbox_full_policy == "drop-newest":
                state = "dropped"
                dropped = record.id
            else:
                oldest = conn.execute(
                    "SELECT session_id FROM cloud_sessions WHERE state = 'pending' ORDER BY seq LIMIT 1"
                ).fetchone()
                dropped = oldest[0]
                self._finish(conn, dropped, "dropped", None, "outbox full (drop-oldest)")
            logger.warning("cloud outbox full (%d sessions): session %s will not be mirrored",
                           self.config.outbox_max_sessions, dropped)
            events.append(("outbox_full", {"outbox": "cloud", "policy": self.config.outbox_full_policy,
                                           "session_id": dropped}))
        conn.execute(
            "INSERT INTO cloud_sessions (session_id, state, next_attempt_at, enqueued_at, last_error,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
            (record.id, state, now, now, None if state == "pending" else "outbox full (drop-newest)",
             None if state == "pending" else now),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO cloud_images (image_id, session_id, section, path, sha256)"
            " VALUES (?, ?, ?, ?, ?)",
            [(row["id"], record.id, row["section"], row["path"], row["sha256"]) for row in images],
        )

        def announce() -> None:
            for type_, fields in events:
                self.events.emit(type_, **fields)  # type: ignore[arg-type]
            for callback in self._on_enqueued:
                callback()

        self.db.after_commit(announce)

    # -- the worker's side ------------------------------------------------------------------------

    def next_due(self, now: float, wanted: set[str] | frozenset[str] = frozenset()) -> OutboxSession | None:
        """The oldest pending session whose retry time has come; sessions someone waits for first."""
        conn = self.db.connection()
        row = None
        for session_id in sorted(wanted):
            row = conn.execute(_DUE + " AND c.session_id = ?", (now, session_id)).fetchone()
            if row is not None:
                break
        if row is None:
            row = conn.execute(_DUE + " ORDER BY c.seq LIMIT 1", (now,)).fetchone()
        if row is None:
            return None
        images = [
            OutboxImage(
                r["image_id"], r["section"], r["path"], r["sha256"], r["sends"],
                UploadResponse.model_validate_json(r["upload_json"]) if r["upload_json"] else None,
            )
            for r in conn.execute(
                "SELECT * FROM cloud_images WHERE session_id = ? ORDER BY image_id", (row["session_id"],)
            )
        ]
        return OutboxSession(row["session_id"], row["imei"], row["attempts"], images)

    def next_due_time(self) -> float | None:
        row = self.db.connection().execute(
            "SELECT MIN(next_attempt_at) FROM cloud_sessions WHERE state = 'pending'"
        ).fetchone()
        return row[0]

    def count_upload_send(self, image_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE cloud_images SET sends = sends + 1 WHERE image_id = ?", (image_id,))

    def count_process_send(self, session_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE cloud_sessions SET process_sends = process_sends + 1 WHERE session_id = ?",
                (session_id,),
            )

    def store_upload(self, image_id: int, answer: UploadResponse) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE cloud_images SET upload_json = ?, uploaded_at = ? WHERE image_id = ?",
                (answer.model_dump_json(), time.time(), image_id),
            )

    def store_result(
        self, session_id: str, answer: ProcessResponse, on_cloud_result: CloudResultHook | None
    ) -> dict[str, Any]:
        """The cloud's answer beside the booth's, the outbox row done, and the MQTT enqueue: one commit."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT result_json FROM sessions WHERE id = ?", (session_id,)).fetchone()
            booth = json.loads(row[0]) if row and row[0] else None
            comparison = compare(booth, answer)
            differences = [abs(r["difference"]) for r in comparison.values() if r["difference"] is not None]
            payload: dict[str, Any] = {
                "sessionId": answer.sessionId,
                "message": answer.message,
                "analysis": {name: part.model_dump(mode="json") for name, part in answer.analysis.items()},
                "images": [image.model_dump(mode="json") for image in answer.images],
                "comparison": comparison,
                "max_abs_difference": max(differences) if differences else None,
                "mirrored_at": utc_iso(now),
            }
            self.store.set_cloud(session_id, payload, conn=conn)
            self._finish(conn, session_id, "done", None, None)
            if on_cloud_result is not None:
                on_cloud_result(conn, session_id, payload)
        return payload

    def charge(self, session_id: str, status: int | None, error: str, retry_at: float) -> None:
        """A failure that counts against this session: retry it no earlier than ``retry_at``."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE cloud_sessions SET attempts = attempts + 1, next_attempt_at = ?, last_failure_at = ?,"
                " last_status = ?, last_error = ? WHERE session_id = ? AND state = 'pending'",
                (retry_at, time.time(), status, error[:ERROR_KEPT_CHARS], session_id),
            )

    def note_failure(self, session_id: str, status: int | None, error: str) -> None:
        """A failure that is not this session's fault (no connection, rate limit): keep it, no charge."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE cloud_sessions SET last_failure_at = ?, last_status = ?, last_error = ?"
                " WHERE session_id = ? AND state = 'pending'",
                (time.time(), status, error[:ERROR_KEPT_CHARS], session_id),
            )

    def dead_letter(self, session_id: str, status: int | None, error: str, key: str | None) -> None:
        with self.db.transaction() as conn:
            self._finish(conn, session_id, "dead", status, error)
            if status in AUTH_STATUSES and key is not None:
                conn.execute(
                    "UPDATE cloud_sessions SET key_fingerprint = ? WHERE session_id = ?",
                    (key_fingerprint(key), session_id),
                )

    def retry_now_failed_since(self, since: float) -> int:
        """After an outage: sessions charged during it are retried at once, not after their backoff."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE cloud_sessions SET next_attempt_at = ?"
                " WHERE state = 'pending' AND last_failure_at >= ? AND next_attempt_at > ?",
                (time.time(), since, time.time()),
            )
            return cursor.rowcount

    def requeue_auth_failures(self, key: str) -> int:
        """Sessions refused for their key under a different key go back in line (the key was fixed)."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE cloud_sessions SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                " finished_at = NULL"
                " WHERE state = 'dead' AND last_status IN (401, 403) AND key_fingerprint IS NOT ?",
                (time.time(), key_fingerprint(key)),
            )
            return cursor.rowcount

    @staticmethod
    def _finish(
        conn: sqlite3.Connection, session_id: str, state: str, status: int | None, error: str | None
    ) -> None:
        conn.execute(
            "UPDATE cloud_sessions SET state = ?, finished_at = ?, last_status = COALESCE(?, last_status),"
            " last_error = ? WHERE session_id = ?",
            (state, time.time(), status, error[:ERROR_KEPT_CHARS] if error else None, session_id),
        )

    # -- what others read -------------------------------------------------------------------------

    def pending_session_ids(self, conn: sqlite3.Connection | None = None) -> set[str]:
        """Retention guard: sessions not yet mirrored keep their images."""
        rows = (conn or self.db.connection()).execute(
            "SELECT session_id FROM cloud_sessions WHERE state = 'pending'"
        )
        return {row[0] for row in rows}

    def depth(self, conn: sqlite3.Connection | None = None) -> int:
        return int(
            (conn or self.db.connection())
            .execute("SELECT COUNT(*) FROM cloud_sessions WHERE state = 'pending'")
            .fetchone()[0]
        )

    def counts(self) -> dict[str, int]:
        rows = self.db.connection().execute("SELECT state, COUNT(*) FROM cloud_sessions GROUP BY state")
        return {state: count for state, count in rows.fetchall()}

    def state_of(self, session_id: str) -> str | None:
        row = self.db.connection().execute(
            "SELECT state FROM cloud_sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return row[0] if row else None

    def dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first: which sessions the cloud refused, with its words."""
        rows = self.db.connection().execute(
            "SELECT session_id, last_status, last_error, finished_at FROM cloud_sessions WHERE state = 'dead'"
            " ORDER BY finished_at DESC LIMIT ?",
            (limit,),
        )
        return [
            {"session_id": r["session_id"], "status": r["last_status"], "error": r["last_error"],
             "time": utc_iso(r["finished_at"])}
            for r in rows.fetchall()
        ]

    def sends(self, session_id: str) -> dict[str, int]:
        """Requests started for this session, answered or not (uploads, process)."""
        conn = self.db.connection()
        uploads = conn.execute(
            "SELECT COALESCE(SUM(sends), 0) FROM cloud_images WHERE session_id = ?", (session_id,)
        ).fetchone()[0]
        process = conn.execute(
            "SELECT COALESCE(process_sends, 0) FROM cloud_sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return {"uploads": int(uploads), "process": int(process[0]) if process else 0}
