"""Retention by age and by disk quota, deleting only what every outbox has delivered.

Outboxes register a guard that names the sessions they still need; those keep their images until
delivered, unless the disk is about to run out (the emergency policy), which is logged and
published as an event.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from edge.config.storage import StorageConfig
from edge.events import EventBus
from edge.spool.sessions import SessionStore

logger = logging.getLogger(__name__)

Guard = Callable[[sqlite3.Connection], set[str]]
Sweeper = Callable[[float], int]
MB = 1024 * 1024
SECONDS_PER_DAY = 86_400


class Retention:
    def __init__(self, store: SessionStore, config: StorageConfig, events: EventBus) -> None:
        self.store = store
        self.config = config
        self.events = events
        self._guards: list[Guard] = []
        self._sweepers: list[Sweeper] = []

    def add_guard(self, guard: Guard) -> None:
        self._guards.append(guard)

    def add_sweeper(self, sweeper: Sweeper) -> None:
        """``sweeper(now)`` deletes a component's own expired data at every sweep."""
        self._sweepers.append(sweeper)

    def free_mb(self) -> float:
        return shutil.disk_usage(self.store.images_root).free / MB

    def disk_low(self) -> bool:
        return self.free_mb() < self.config.min_free_mb

    def images_mb(self) -> float:
        row = self.store.db.connection().execute("SELECT COALESCE(SUM(size), 0) FROM images").fetchone()
        return int(row[0]) / MB

    def sweep(self, now: float | None = None) -> int:
        """Delete expired and over-quota delivered sessions; returns how many were deleted."""
        now = time.time() if now is None else now
        conn = self.store.db.connection()
        # Finished sessions first, then what the outboxes still hold: a session finishing in
        # between is then missing from the first list, never in it without its guard.
        finished = [
            (row["id"], row["created_at"])
            for row in conn.execute(
                "SELECT id, created_at FROM sessions WHERE status IN ('graded', 'retake', 'failed') ORDER BY created_at"
            )
        ]
        pending: set[str] = set()
        for guard in self._guards:
            pending |= guard(conn)
        deletable = [(sid, created) for sid, created in finished if sid not in pending]
        cutoff = now - self.config.retention_days * SECONDS_PER_DAY
        doomed = [sid for sid, created in deletable if created < cutoff]
        over = self.images_mb() - self.config.quota_mb - sum(self._session_mb(sid) for sid in doomed)
        for sid, _ in deletable:
            if over <= 0:
                break
            if sid not in doomed:
                doomed.append(sid)
                over -= self._session_mb(sid)
        for sid in doomed:
            self._delete_session(sid)
        if doomed:
            logger.info("retention deleted %d delivered sessions", len(doomed))
        for sweeper in self._sweepers:
            sweeper(now)
        if self.free_mb() < self.config.emergency_free_mb:
            self._emergency([sid for sid, _ in finished if sid in pending])
        return len(doomed)

    def _emergency(self, undelivered: list[str]) -> None:
        """Keep the booth able to record new sessions: drop images (never rows) of the oldest."""
        for sid in undelivered:
            if self.free_mb() >= self.config.emergency_free_mb:
                return
            freed = self._delete_files(sid)
            if freed:
                logger.warning("disk emergency: deleted %.1f MB of images of undelivered session %s", freed, sid)
                self.events.emit("retention_emergency", session_id=sid, freed_mb=round(freed, 1))

    def _session_mb(self, session_id: str) -> float:
        row = (
            self.store.db.connection()
            .execute("SELECT COALESCE(SUM(size), 0) FROM images WHERE session_id = ?", (session_id,))
            .fetchone()
        )
        return int(row[0]) / MB

    def _delete_files(self, session_id: str) -> float:
        freed = 0
        for image in self.store.images(session_id):
            path: Path = self.store.images_root / image.path
            if path.exists():
                freed += path.stat().st_size
                path.unlink()
        with self.store.db.transaction() as conn:
            conn.execute("DELETE FROM images WHERE session_id = ?", (session_id,))
        return freed / MB

    def _delete_session(self, session_id: str) -> None:
        self._delete_files(session_id)
        with self.store.db.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
