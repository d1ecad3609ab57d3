"""Sessions and their images: the row exists from the trigger on, every image before grading."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edge.spool.db import Database
from edge.spool.files import FileJournal, atomic_write, fsync_dir
from edge.statuses import FINAL, Status, sql_list

logger = logging.getLogger(__name__)

ImageKind = Literal["original", "overlay"]

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

MIGRATIONS = (
    (
        """
        CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        imei TEXT NOT NULL,
        source TEXT NOT NULL,
        request_id TEXT,
        status TEXT NOT NULL,
        reason TEXT,
        grade TEXT,
        result_json TEXT,
        cloud_json TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
        )
        """,
        "CREATE INDEX sessions_created ON sessions (created_at)",
        "CREATE INDEX sessions_status ON sessions (status)",
        """
        CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        section TEXT NOT NULL,
        shot INTEGER NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX images_session ON images (session_id, kind, section, shot)",
    ),
    # v2: a review session's provisional grade, and the technician's decision on it.
    (
        "ALTER TABLE sessions ADD COLUMN provisional_grade TEXT",
        "ALTER TABLE sessions ADD COLUMN reviewed_by TEXT",
        "ALTER TABLE sessions ADD COLUMN review_note TEXT",
        "ALTER TABLE sessions ADD COLUMN reviewed_at REAL",
    ),
    # v3: a trigger's request_id is looked up, so that sending it again starts no second session.
    "CREATE INDEX sessions_request ON sessions (request_id)",
    # v4: how many starts found the session grading, so one whose grading kills the daemon is not
    # regraded forever.
    "ALTER TABLE sessions ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0",
)


@dataclass(frozen=True)
class ImageRecord:
    id: int
    session_id: str
    section: str
    shot: int
    kind: str
    path: str
    sha256: str
    size: int
    created_at: float


@dataclass(frozen=True)
class SessionRecord:
    id: str
    imei: str
    source: str
    request_id: str | None
    status: str
    reason: str | None
    grade: str | None
    result: dict[str, Any] | None
    cloud: dict[str, Any] | None
    created_at: float
    updated_at: float
    provisional_grade: str | None = None
    reviewed_by: str | None = None
    review_note: str | None = None
    reviewed_at: float | None = None
    recoveries: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINAL


# Runs inside the transaction that stores a finished session: outbox enqueues, counters (which
# announce through Database.after_commit). The daemon declares the one list of them.
FinishedHook = Callable[[sqlite3.Connection, SessionRecord], None]


def image_path(imei: str, section: str, filename: str, now_ms: int) -> str:
    """The contract's path form: ``<imei>/<section>/<epoch-ms>_<filename>``."""
    if not SAFE_NAME.fullmatch(filename) or not SAFE_NAME.fullmatch(section) or not imei.isdigit():
        raise ValueError("image path parts must be plain names")
    return f"{imei}/{section}/{now_ms}_{filename}"


def _image_name(section: str, shot: int, kind: ImageKind) -> str:
    return f"{section}-{shot + 1}{'-overlay' if kind == 'overlay' else ''}.jpg"


class AlreadyReviewedError(Exception):
    """The session is not (or no longer) waiting for a technician's review."""


class SessionStore:
    def __init__(
        self,
        db: Database,
        images_root: Path,
        on_finished: Sequence[FinishedHook] = (),
        on_reviewed: Sequence[FinishedHook] = (),
    ) -> None:
        """``on_reviewed`` hooks run in the transaction that stores a technician's decision."""
        self.db = db
        self.images_root = images_root
        images_root.mkdir(parents=True, exist_ok=True)
        db.migrate("spool", MIGRATIONS)
        self.journal = FileJournal(db, images_root)
        self._on_finished = tuple(on_finished)
        self._on_reviewed = tuple(on_reviewed)

    def create(
        self, imei: str, source: str, request_id: str | None = None, status: Status = "capturing"
    ) -> SessionRecord:
        session_id = str(uuid.uuid4())
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (id, imei, source, request_id, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, imei, source, request_id, status, now, now),
            )
        record = self.get(session_id)
        assert record is not None
        return record

    def set_status(self, session_id: str, status: Status, reason: str | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET status = ?, reason = ?, updated_at = ? WHERE id = ?",
                (status, reason, time.time(), session_id),
            )

    def note_recovery(self, session_id: str) -> int:
        """Count a start that found the session grading, committed before it is graded again;
        returns the count."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "UPDATE sessions SET recoveries = recoveries + 1 WHERE id = ? RETURNING recoveries", (session_id,)
            ).fetchone()
        return int(row[0])

    def add_image(
        self,
        session: SessionRecord,
        section: str,
        shot: int,
        data: bytes,
        kind: ImageKind = "original",
        filename: str | None = None,
    ) -> ImageRecord:
        """Note the file, write it atomically, then its row: a row never points at a missing file,
        and a crash before the row leaves a note that removes the file on the next start."""
        return self._store(session, [(section, shot, filename or _image_name(section, shot, kind), data)], kind)[0]

    def add_images(
        self, session: SessionRecord, images: Sequence[tuple[str, int, bytes]], kind: ImageKind = "original"
    ) -> list[ImageRecord]:
        """``add_image`` for several (section, shot, bytes) at once, in fewer syncs: a session's six
        overlays over two sections take 10 instead of 24, between grading and the result."""
        named = [(section, shot, _image_name(section, shot, kind), data) for section, shot, data in images]
        return self._store(session, named, kind)

    def _store(
        self, session: SessionRecord, images: Sequence[tuple[str, int, str, bytes]], kind: ImageKind
    ) -> list[ImageRecord]:
        """One commit notes the files, each is written and fsynced, each folder fsynced once, one
        commit records their rows."""
        rels = self.journal.claim(
            lambda ms: [image_path(session.imei, section, name, ms) for section, _, name, _ in images]
        )
        try:
            digests = [
                atomic_write(self.images_root / rel, data, sync_folder=False)
                for rel, (*_, data) in zip(rels, images, strict=True)
            ]
            for folder in dict.fromkeys((self.images_root / rel).parent for rel in rels):
                fsync_dir(folder)
        except OSError:
            # The ones written have no row: remove them now, not at the next start (when the disk
            # is full, the notes may stay, and the next start removes them).
            with contextlib.suppress(OSError, sqlite3.Error):
                self.journal.remove(rels)
            raise
        now = time.time()
        with self.db.transaction() as conn:
            self.journal.clear(conn, rels)
            return [
                self._insert_image(conn, session.id, section, shot, kind, rel, digest, len(data), now)
                for rel, digest, (section, shot, _, data) in zip(rels, digests, images, strict=True)
            ]

    def register_image(
        self, session_id: str, section: str, shot: int, kind: str, rel: str, sha256: str, size: int
    ) -> ImageRecord:
        """Record a file already durably on disk under ``images_root`` (noted with ``journal.claim``)."""
        now = time.time()
        with self.db.transaction() as conn:
            self.journal.clear(conn, [rel])
            return self._insert_image(conn, session_id, section, shot, kind, rel, sha256, size, now)

    @staticmethod
    def _insert_image(
        conn: sqlite3.Connection,
        session_id: str,
        section: str,
        shot: int,
        kind: str,
        rel: str,
        sha256: str,
        size: int,
        now: float,
    ) -> ImageRecord:
        cursor = conn.execute(
            "INSERT INTO images (session_id, section, shot, kind, path, sha256, size, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, section, shot, kind, rel, sha256, size, now),
        )
        return ImageRecord(int(cursor.lastrowid or 0), session_id, section, shot, kind, rel, sha256, size, now)

    def delete_images(self, session_id: str, kind: ImageKind) -> int:
        """Rows (and the journal's note of their files) in one commit, then the files; how many."""
        with self.db.transaction() as conn:
            paths = [
                row[0]
                for row in conn.execute("SELECT path FROM images WHERE session_id = ? AND kind = ?", (session_id, kind))
            ]
            self.journal.note(conn, paths)
            conn.execute("DELETE FROM images WHERE session_id = ? AND kind = ?", (session_id, kind))
        self.journal.remove(paths)
        return len(paths)

    def images(self, session_id: str, kind: ImageKind | None = None) -> list[ImageRecord]:
        query = "SELECT * FROM images WHERE session_id = ?"
        args: tuple[Any, ...] = (session_id,)
        if kind is not None:
            query += " AND kind = ?"
            args = (session_id, kind)
        rows = self.db.connection().execute(query + " ORDER BY id", args).fetchall()
        return [ImageRecord(**dict(row)) for row in rows]

    def image_by_path(self, rel: str) -> ImageRecord | None:
        row = self.db.connection().execute("SELECT * FROM images WHERE path = ?", (rel,)).fetchone()
        return ImageRecord(**dict(row)) if row else None

    def read_image(self, image: ImageRecord) -> bytes:
        return (self.images_root / image.path).read_bytes()

    def finish(
        self,
        session_id: str,
        status: Status,
        result: dict[str, Any] | None,
        grade: str | None = None,
        reason: str | None = None,
        provisional_grade: str | None = None,
    ) -> SessionRecord:
        """Store the outcome and enqueue it in every outbox, all in one transaction."""
        if status not in FINAL:
            raise ValueError(f"{status} is not a final status")
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET status = ?, reason = ?, grade = ?, provisional_grade = ?, result_json = ?,"
                " updated_at = ? WHERE id = ?",
                (
                    status,
                    reason,
                    grade,
                    provisional_grade,
                    json.dumps(result) if result is not None else None,
                    time.time(),
                    session_id,
                ),
            )
            record = self._get(conn, session_id)
            if record is None:
                raise KeyError(session_id)
            for hook in self._on_finished:
                hook(conn, record)
        return record

    def review(self, session_id: str, grade: str, reviewed_by: str, note: str) -> SessionRecord:
        """A technician's grade for a session in review: it becomes graded, its answer says who
        decided and why, and the ``on_reviewed`` hooks run in the same transaction."""
        now = time.time()
        with self.db.transaction() as conn:
            record = self._get(conn, session_id)
            if record is None:
                raise KeyError(session_id)
            if record.status != "review" or record.result is None:
                raise AlreadyReviewedError(f"session is {record.status}, not waiting for a review")
            result = {
                **record.result,
                "status": "graded",
                "grade": grade,
                "reviewed_by": reviewed_by,
                "review_note": note,
            }
            conn.execute(
                "UPDATE sessions SET status = 'graded', grade = ?, result_json = ?, reviewed_by = ?, review_note = ?,"
                " reviewed_at = ?, updated_at = ? WHERE id = ?",
                (grade, json.dumps(result), reviewed_by, note, now, now, session_id),
            )
            reviewed = self._get(conn, session_id)
            assert reviewed is not None
            for hook in self._on_reviewed:
                hook(conn, reviewed)
        return reviewed

    def set_cloud(self, session_id: str, cloud: dict[str, Any], conn: sqlite3.Connection | None = None) -> None:
        (conn or self.db.connection()).execute(
            "UPDATE sessions SET cloud_json = ?, updated_at = ? WHERE id = ?",
            (json.dumps(cloud), time.time(), session_id),
        )

    def by_request_id(self, request_id: str) -> SessionRecord | None:
        """The first session started for ``request_id``."""
        row = (
            self.db.connection()
            .execute("SELECT * FROM sessions WHERE request_id = ? ORDER BY created_at LIMIT 1", (request_id,))
            .fetchone()
        )
        return _record(row) if row else None

    def get(self, session_id: str) -> SessionRecord | None:
        return self._get(self.db.connection(), session_id)

    def list(self, limit: int = 50, before: float | None = None) -> list[SessionRecord]:
        """Newest first; ``before`` is a created_at time to page from."""
        conn = self.db.connection()
        if before is None:
            rows = conn.execute("SELECT * FROM sessions ORDER BY created_at DESC LIMIT ?", (limit,))
        else:
            rows = conn.execute(
                "SELECT * FROM sessions WHERE created_at < ? ORDER BY created_at DESC LIMIT ?", (before, limit)
            )
        return [_record(row) for row in rows.fetchall()]

    def with_status(self, status: Status, limit: int = 50) -> list[SessionRecord]:
        """Oldest first: the order a queue of people waiting is worked through."""
        rows = self.db.connection().execute(
            "SELECT * FROM sessions WHERE status = ? ORDER BY created_at LIMIT ?", (status, limit)
        )
        return [_record(row) for row in rows.fetchall()]

    def unfinished(self) -> list[SessionRecord]:
        rows = self.db.connection().execute(
            f"SELECT * FROM sessions WHERE status NOT IN ({sql_list(FINAL)}) ORDER BY created_at"  # noqa: S608
        )
        return [_record(row) for row in rows.fetchall()]

    def count_by_status(self) -> dict[str, int]:
        rows = self.db.connection().execute("SELECT status, COUNT(*) FROM sessions GROUP BY status")
        return {status: count for status, count in rows.fetchall()}

    @staticmethod
    def _get(conn: sqlite3.Connection, session_id: str) -> SessionRecord | None:
        row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return _record(row) if row else None


def _record(row: sqlite3.Row) -> SessionRecord:
    data = dict(row)
    result = data.pop("result_json")
    cloud = data.pop("cloud_json")
    return SessionRecord(
        **data,
        result=json.loads(result) if result else None,
        cloud=json.loads(cloud) if cloud else None,
    )
