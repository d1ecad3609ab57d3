"""Retention by age and by disk quota, deleting only what the outbox has delivered.

Sessions with a row still waiting in any outbox channel, and sessions waiting for a technician's
review, keep their images, unless free disk falls under ``emergency_level_mb`` (the emergency
policy): then what goes first (uploads no session took), then delivered sessions, then the images
of undelivered ones, then those of reviews, oldest first, each logged, and the images' deletion
published as an event. The emergency sits above the free disk under which the booth refuses
sessions, so weeks without a network fill the disk with undelivered photos but never stop the
booth from grading.
Rows go before files, in one transaction per session: a crash in between leaves files no row
points at (removed by ``FileJournal.recover`` on the next start), never a row without its file.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence

from edge.config.storage import StorageConfig
from edge.events import EventBus
from edge.spool.files import FileJournal
from edge.spool.outbox import Outbox
from edge.spool.sessions import SessionStore
from edge.statuses import FINAL, SETTLED, sql_list
from edge.worker import Worker

logger = logging.getLogger(__name__)

Sweeper = Callable[[float], int]
MB = 1024 * 1024
SECONDS_PER_DAY = 86_400


class Retention:
    def __init__(
        self,
        store: SessionStore,
        config: StorageConfig,
        events: EventBus,
        outbox: Outbox,
        journal: FileJournal,
        sweepers: Sequence[Sweeper] = (),
        first_in_emergency: Sequence[Sweeper] = (),
    ) -> None:
        """``sweepers``: ``sweeper(now)`` deletes another part's expired data at every sweep;
        ``first_in_emergency``: what goes before any session when the disk emergency comes."""
        self.store = store
        self.config = config
        self.events = events
        self.outbox = outbox
        self.journal = journal
        self._sweepers = (outbox.prune, *sweepers)
        self._first_in_emergency = first_in_emergency
        if config.emergency_level_mb != config.emergency_free_mb:
            logger.warning(
                "storage.emergency_free_mb (%d) is not above min_free_mb (%d), so the disk emergency would"
                " come only after the booth refused sessions: it starts at %d MB free instead",
                config.emergency_free_mb, config.min_free_mb, config.emergency_level_mb,
            )  # fmt: skip
        # A worker of its own: a long sweep never holds up the watchdog's pings, and a sweep that
        # keeps failing backs off like any worker.
        self.worker = Worker("retention", self._step)

    @property
    def workers(self) -> list[Worker]:
        return [self.worker]

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def _step(self) -> float:
        self.sweep()
        return self.config.sweep_interval_s

    def free_mb(self) -> float:
        return shutil.disk_usage(self.store.images_root).free / MB

    def images_mb(self) -> float:
        row = self.store.db.connection().execute("SELECT COALESCE(SUM(size), 0) FROM images").fetchone()
        return int(row[0]) / MB

    def sweep(self, now: float | None = None) -> int:
        """Delete expired and over-quota delivered sessions, and what the emergency must; returns how
        many sessions were deleted whole."""
        now = time.time() if now is None else now
        conn = self.store.db.connection()
        # Finished sessions first, then what the outboxes still hold: a session finishing in
        # between is then missing from the first list, never in it without its guard. A session
        # waiting for a technician's review is kept whatever its age.
        finished = [
            (row["id"], row["created_at"])
            for row in conn.execute(
                f"SELECT id, created_at FROM sessions WHERE status IN ({sql_list(SETTLED)}) ORDER BY created_at"  # noqa: S608
            )
        ]
        pending = self.outbox.pending_session_ids(conn)
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
        if self.free_mb() < self.config.emergency_level_mb:
            reviews = [
                row["id"]
                for row in conn.execute(
                    f"SELECT id FROM sessions WHERE status IN ({sql_list(FINAL - SETTLED)}) ORDER BY created_at"  # noqa: S608
                )
            ]
            delivered = [sid for sid, _ in deletable if sid not in doomed]
            doomed += self._emergency(now, delivered, [sid for sid, _ in finished if sid in pending], reviews)
        return len(doomed)

    def _emergency(self, now: float, delivered: list[str], undelivered: list[str], reviews: list[str]) -> list[str]:
        """Keep the booth able to grade: ``first_in_emergency`` (uploads no session took), then
        delivered sessions whole, then the images (never the rows) of undelivered sessions and of
        reviews, oldest first; returns the sessions deleted."""
        for sweeper in self._first_in_emergency:
            if gone := sweeper(now):
                logger.warning("disk emergency: %d upload(s) expired early (sessions keep their own links)", gone)
        deleted = []
        for sid in delivered:
            if self.free_mb() >= self.config.emergency_level_mb:
                return deleted
            self._delete_session(sid)
            deleted.append(sid)
            logger.warning("disk emergency: deleted delivered session %s before its time", sid)
        for what, sessions in (("undelivered", undelivered), ("review", reviews)):
            for sid in sessions:
                if self.free_mb() >= self.config.emergency_level_mb:
                    return deleted
                freed = self._delete_files(sid)
                if freed:
                    logger.warning("disk emergency: deleted %.1f MB of images of %s session %s", freed, what, sid)
                    self.events.emit("retention_emergency", session_id=sid, freed_mb=round(freed, 1), waiting=what)
        return deleted

    def _session_mb(self, session_id: str) -> float:
        row = (
            self.store.db.connection()
            .execute("SELECT COALESCE(SUM(size), 0) FROM images WHERE session_id = ?", (session_id,))
            .fetchone()
        )
        return int(row[0]) / MB

    def _delete_files(self, session_id: str) -> float:
        return self._delete(session_id, "DELETE FROM images WHERE session_id = ?")

    def _delete_session(self, session_id: str) -> None:
        self._delete(session_id, "DELETE FROM sessions WHERE id = ?")

    def _delete(self, session_id: str, statement: str) -> float:
        """Rows (and the journal's note of their files) in one commit, then the files."""
        with self.store.db.transaction() as conn:
            paths = [row[0] for row in conn.execute("SELECT path FROM images WHERE session_id = ?", (session_id,))]
            self.journal.note(conn, paths)
            conn.execute(statement, (session_id,))
        return self.journal.remove(paths) / MB
