"""The MQTT outbox: results committed with the session, delivered in order, bounded on disk.

A row is written inside the transaction that stores the session's result (a SessionStore result
hook), so a result is never published before it is committed, and never committed without being
queued. A row is marked delivered only when the broker's PUBACK arrives.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Literal

from edge.spool.db import Database

logger = logging.getLogger(__name__)

COMPONENT = "mqtt_outbox"
MIGRATIONS = (
    """
    CREATE TABLE mqtt_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT,
        kind TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        delivered_at REAL
    );
    CREATE INDEX mqtt_outbox_pending ON mqtt_outbox (id) WHERE delivered_at IS NULL;
    CREATE INDEX mqtt_outbox_session ON mqtt_outbox (session_id);
    CREATE INDEX mqtt_outbox_delivered ON mqtt_outbox (delivered_at) WHERE delivered_at IS NOT NULL
    """,
)

Kind = Literal["result", "cloud"]
Policy = Literal["drop-oldest", "drop-newest"]


@dataclass(frozen=True)
class OutboxRow:
    id: int
    session_id: str | None
    kind: str
    topic: str
    payload: str
    created_at: float
    attempts: int


@dataclass(frozen=True)
class Overflow:
    """What the bound did to make (or refuse) room; reported as an ``outbox_full`` event."""

    policy: str
    limit: int
    dropped_session_ids: tuple[str, ...]


class Outbox:
    def __init__(self, db: Database, max_rows: int, policy: Policy) -> None:
        self.db = db
        self.max_rows = max_rows
        self.policy = policy
        db.migrate(COMPONENT, MIGRATIONS)

    def enqueue(
        self,
        conn: sqlite3.Connection,
        session_id: str | None,
        kind: Kind,
        topic: str,
        payload: dict[str, Any],
    ) -> Overflow | None:
        """Queue ``payload`` for ``topic`` (relative to the prefix) in the caller's transaction."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        depth = self._depth(conn)
        overflow = None
        if depth >= self.max_rows:
            if self.policy == "drop-newest":
                return Overflow(self.policy, self.max_rows, (session_id or "",))
            excess = depth - self.max_rows + 1
            rows = conn.execute(
                "SELECT id, session_id FROM mqtt_outbox WHERE delivered_at IS NULL ORDER BY id LIMIT ?",
                (excess,),
            ).fetchall()
            conn.executemany("DELETE FROM mqtt_outbox WHERE id = ?", [(row["id"],) for row in rows])
            overflow = Overflow(self.policy, self.max_rows, tuple(row["session_id"] or "" for row in rows))
        conn.execute(
            "INSERT INTO mqtt_outbox (session_id, kind, topic, payload, created_at) VALUES (?, ?, ?, ?, ?)",
            (session_id, kind, topic, body, time.time()),
        )
        return overflow

    def pending(self, limit: int) -> list[OutboxRow]:
        """The oldest undelivered rows, in the order they were queued."""
        rows = self.db.connection().execute(
            "SELECT id, session_id, kind, topic, payload, created_at, attempts FROM mqtt_outbox"
            " WHERE delivered_at IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [OutboxRow(**dict(row)) for row in rows.fetchall()]

    def mark_delivered(self, row_ids: list[int]) -> None:
        if not row_ids:
            return
        now = time.time()
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE mqtt_outbox SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
                [(now, row_id) for row_id in row_ids],
            )

    def depth(self) -> int:
        return self._depth(self.db.connection())

    @staticmethod
    def _depth(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COUNT(*) FROM mqtt_outbox WHERE delivered_at IS NULL").fetchone()[0])

    @staticmethod
    def pending_session_ids(conn: sqlite3.Connection) -> set[str]:
        """Retention guard: sessions with something still waiting here keep their files."""
        rows = conn.execute("SELECT DISTINCT session_id FROM mqtt_outbox WHERE delivered_at IS NULL")
        return {row[0] for row in rows.fetchall() if row[0] is not None}

    def prune_delivered(self, before: float) -> int:
        """Forget rows delivered before ``before`` (a retention sweeper)."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM mqtt_outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", (before,)
            )
        if cursor.rowcount:
            logger.info("mqtt: pruned %d delivered outbox rows", cursor.rowcount)
        return cursor.rowcount
