"""The one outbox: everything that leaves the booth waits here, per channel, in the spool's SQLite.

A row is enqueued inside the caller's transaction (the one that stores what it announces), so
nothing is sent before it is committed and nothing is committed without being queued. Every
channel ("mqtt", "cloud") has the same rules:
- a bound on waiting rows, with one policy when full (drop the oldest or refuse the newest) and one
  ``outbox_full`` event shape;
- ``claim_due`` hands out due rows oldest first; a channel that keeps strict order
  (``ordered``) hands out nothing behind a row still waiting for its retry time;
- ``ack`` finishes rows, ``retry`` counts an attempt and sets the next one with capped, jittered
  exponential backoff (or the server's ``Retry-After``), ``dead`` gives a row up with the reason;
- finished rows are pruned after the channel's keep time.
The channel's wake event is set once an enqueue commits, so its worker looks at once.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from edge.backoff import backoff_delay
from edge.events import EventBus
from edge.spool.db import Database, Step
from edge.timefmt import utc_iso

logger = logging.getLogger(__name__)

COMPONENT = "outbox"
ERROR_KEPT_CHARS = 500
RETRY_AFTER_JITTER = 0.1

Policy = Literal["drop-oldest", "drop-newest"]
State = Literal["pending", "done", "dead", "dropped"]


def _v1(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            channel TEXT NOT NULL,
            session_id TEXT REFERENCES sessions (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            topic TEXT,
            payload TEXT,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            sends INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_failure_at REAL,
            last_status INTEGER,
            last_error TEXT,
            failed_under TEXT,
            created_at REAL NOT NULL,
            finished_at REAL
        )
        """
    )
    conn.execute("CREATE INDEX outbox_due ON outbox (channel, state, next_attempt_at, id)")
    conn.execute("CREATE INDEX outbox_session ON outbox (session_id, channel)")
    conn.execute("CREATE INDEX outbox_finished ON outbox (channel, finished_at) WHERE state != 'pending'")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    # Rows queued by the two outboxes this one replaces move over in their order.
    if "mqtt_outbox" in tables:
        conn.execute(
            "INSERT INTO outbox (channel, session_id, kind, topic, payload, state, attempts, next_attempt_at,"
            " created_at, finished_at)"
            " SELECT 'mqtt', session_id, kind, topic, payload,"
            " CASE WHEN delivered_at IS NULL THEN 'pending' ELSE 'done' END, attempts, created_at, created_at,"
            " delivered_at FROM mqtt_outbox"
            " WHERE session_id IS NULL OR session_id IN (SELECT id FROM sessions) ORDER BY id"
        )
        conn.execute("DROP TABLE mqtt_outbox")
        conn.execute("DELETE FROM schema_migrations WHERE component = 'mqtt_outbox'")
    if "cloud_sessions" in tables:
        # cloud_images still points at cloud_sessions: the cloud channel's own migration moves it.
        conn.execute(
            "INSERT INTO outbox (channel, session_id, kind, state, attempts, sends, next_attempt_at,"
            " last_failure_at, last_status, last_error, failed_under, created_at, finished_at)"
            " SELECT 'cloud', session_id, 'session', state, attempts, process_sends, next_attempt_at,"
            " last_failure_at, last_status, last_error, key_fingerprint, enqueued_at, finished_at"
            " FROM cloud_sessions ORDER BY seq"
        )


MIGRATIONS: tuple[Step, ...] = (_v1,)


@dataclass(frozen=True)
class Channel:
    """One destination's rules. ``ordered``: a row waiting for its retry holds back the rows after it."""

    name: str
    max_rows: int
    policy: Policy
    backoff_base_s: float
    backoff_cap_s: float
    retry_after_max_s: float
    keep_finished_s: float
    ordered: bool
    wake: threading.Event = field(default_factory=threading.Event, compare=False)

    @property
    def longest_wait_s(self) -> float:
        """The furthest ahead ``Outbox.retry`` sets a row's next attempt."""
        return max(self.backoff_cap_s, self.retry_after_max_s * (1 + RETRY_AFTER_JITTER))


@dataclass(frozen=True)
class Row:
    id: int
    channel: str
    session_id: str | None
    kind: str
    topic: str | None
    payload: str | None
    attempts: int
    sends: int
    created_at: float

    def body(self) -> dict[str, Any]:
        return json.loads(self.payload) if self.payload else {}


_FIELDS = ("id", "channel", "session_id", "kind", "topic", "payload", "attempts", "sends", "created_at")
_COLUMNS = ", ".join(_FIELDS)


def _row(row: sqlite3.Row) -> Row:
    return Row(*(row[name] for name in _FIELDS))


class Outbox:
    def __init__(
        self, db: Database, events: EventBus, channels: Sequence[Channel], clock: Callable[[], float] = time.time
    ) -> None:
        """``clock``: the wall clock the rows' times are kept in (stored, so not a monotonic one)."""
        self.db = db
        self.clock = clock
        self.events = events
        self.channels = {channel.name: channel for channel in channels}
        self._rng = random.Random()
        db.migrate(COMPONENT, MIGRATIONS)

    # -- producers (inside the caller's transaction) -------------------------------------------

    def enqueue(
        self,
        conn: sqlite3.Connection,
        channel: str,
        session_id: str | None,
        kind: str,
        payload: dict[str, Any] | None = None,
        topic: str | None = None,
    ) -> int | None:
        """Queue a row; its id, or None when the bound refused it (drop-newest)."""
        spec = self.channels[channel]
        now = self.clock()
        dropped: list[str | None] = []
        state: State = "pending"
        excess = self.depth(channel, conn) - spec.max_rows + 1
        if excess > 0:
            if spec.policy == "drop-newest":
                state = "dropped"
                dropped.append(session_id)
            else:
                rows = conn.execute(
                    "SELECT id, session_id FROM outbox WHERE channel = ? AND state = 'pending' ORDER BY id LIMIT ?",
                    (channel, excess),
                ).fetchall()
                self._finish(conn, [row["id"] for row in rows], "dropped", None, "outbox full (drop-oldest)")
                dropped.extend(row["session_id"] for row in rows)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False) if payload is not None else None
        cursor = conn.execute(
            "INSERT INTO outbox (channel, session_id, kind, topic, payload, state, next_attempt_at, created_at,"
            " finished_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (channel, session_id, kind, topic, body, state, now, now,
             None if state == "pending" else now, None if state == "pending" else "outbox full (drop-newest)"),
        )
        self.db.after_commit(lambda: self._announce(spec, dropped))
        return int(cursor.lastrowid or 0) if state == "pending" else None

    def _announce(self, spec: Channel, dropped: list[str | None]) -> None:
        if dropped:
            logger.warning(
                "%s outbox full (%d waiting); policy %s dropped %d row(s)",
                spec.name, spec.max_rows, spec.policy, len(dropped),
            )
            self.events.emit(
                "outbox_full",
                outbox=spec.name,
                policy=spec.policy,
                limit=spec.max_rows,
                dropped_session_ids=[sid for sid in dropped if sid is not None],
            )
        spec.wake.set()

    # -- the channel's worker --------------------------------------------------------------------

    def claim_due(
        self, channel: str, limit: int, skip: frozenset[int] = frozenset(), first: frozenset[str] = frozenset()
    ) -> list[Row]:
        """Up to ``limit`` due rows, oldest first (rows of sessions in ``first`` ahead), ``skip`` left out.

        In an ordered channel the first pending row not yet due ends the list: nothing overtakes it.
        """
        now = self.clock()
        self._pull_in_stepped(channel, now)
        conn = self.db.connection()
        claimed: list[Row] = []
        if first:
            marks = ",".join("?" * len(first))
            for row in conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE channel = ? AND state = 'pending' AND next_attempt_at <= ?"  # noqa: S608 - placeholders only
                f" AND session_id IN ({marks}) ORDER BY id",
                (channel, now, *sorted(first)),
            ):
                if row["id"] not in skip and len(claimed) < limit:
                    claimed.append(_row(row))
        ordered = self.channels[channel].ordered
        rows = conn.execute(
            f"SELECT {_COLUMNS}, next_attempt_at FROM outbox WHERE channel = ? AND state = 'pending'"  # noqa: S608
            + ("" if ordered else " AND next_attempt_at <= ?")
            + " ORDER BY id LIMIT ?",
            (channel, limit + len(skip) + len(claimed)) if ordered
            else (channel, now, limit + len(skip) + len(claimed)),
        )
        taken = {row.id for row in claimed}
        for row in rows:
            if len(claimed) >= limit:
                break
            if row["next_attempt_at"] > now:
                break  # only an ordered channel lists rows not yet due
            if row["id"] in skip or row["id"] in taken:
                continue
            claimed.append(_row(row))
        return claimed

    def seconds_to_next_due(self, channel: str) -> float | None:
        """How long until a pending row is due (0 when one is), None when none is pending.

        A row due beyond the channel's longest wait counts as due: ``claim_due`` pulls it in.
        """
        now = self.clock()
        row = self.db.connection().execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE channel = ? AND state = 'pending'", (channel,)
        ).fetchone()
        if row[0] is None:
            return None
        wait = row[0] - now
        return 0.0 if wait > self.channels[channel].longest_wait_s else max(0.0, wait)

    def _pull_in_stepped(self, channel: str, now: float) -> None:
        """Make due now the rows due later than any wait the channel sets: they were scheduled
        before the clock was set back (a Pi has no clock of its own until NTP or a person sets it),
        and would otherwise wait out the step, holding an ordered channel behind them."""
        horizon = now + self.channels[channel].longest_wait_s
        # A read first (on the index): the write, and its sync, only once the clock was set back.
        stepped = self.db.connection().execute(
            "SELECT 1 FROM outbox WHERE channel = ? AND state = 'pending' AND next_attempt_at > ? LIMIT 1",
            (channel, horizon),
        ).fetchone()
        if stepped is None:
            return
        with self.db.transaction() as conn:
            moved = conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE channel = ? AND state = 'pending' AND next_attempt_at > ?",
                (now, channel, horizon),
            ).rowcount
        logger.warning("%s outbox: %d row(s) were due after the clock was set back; due now", channel, moved)

    def count_send(self, row_id: int) -> None:
        """A request for this row is about to go out (committed first: a lost answer still counts)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE outbox SET sends = sends + 1 WHERE id = ?", (row_id,))

    def ack(self, row_ids: Sequence[int], conn: sqlite3.Connection | None = None) -> None:
        """Delivered: in the caller's transaction when given, else in one of its own."""
        if conn is not None:
            self._finish(conn, row_ids, "done", None, None)
            return
        with self.db.transaction() as tx:
            self._finish(tx, row_ids, "done", None, None)

    def retry(
        self,
        row_id: int,
        status: int | None,
        error: str,
        *,
        charge: bool = True,
        retry_after_s: float | None = None,
    ) -> float:
        """A failed attempt: the row waits at least the seconds returned.

        ``charge``: the failure was this row's (counted, and it backs off on its own); otherwise only
        noted, and due again at once unless the server said when (``retry_after_s``, honoured up to
        the channel's ``retry_after_max_s``).
        """
        spec = self.channels[self._channel_of(row_id)]
        now = self.clock()
        with self.db.transaction() as conn:
            attempts = int(conn.execute("SELECT attempts FROM outbox WHERE id = ?", (row_id,)).fetchone()[0])
            if charge:
                attempts += 1
            if retry_after_s is not None:
                wait = min(max(retry_after_s, spec.backoff_base_s), spec.retry_after_max_s)
                at = now + wait * (1 + RETRY_AFTER_JITTER * self._rng.random())
            elif charge:
                at = now + backoff_delay(attempts, spec.backoff_base_s, spec.backoff_cap_s, self._rng)
            else:
                at = now
            conn.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = MAX(next_attempt_at, ?), last_failure_at = ?,"
                " last_status = ?, last_error = ? WHERE id = ? AND state = 'pending'",
                (attempts, at, now, status, error[:ERROR_KEPT_CHARS], row_id),
            )
        return at - now

    def dead(self, row_id: int, status: int | None, error: str, failed_under: str | None = None) -> None:
        """Given up: no retry can help. ``failed_under`` tags what it failed with (say, a key's fingerprint)."""
        with self.db.transaction() as conn:
            self._finish(conn, [row_id], "dead", status, error)
            conn.execute("UPDATE outbox SET failed_under = ? WHERE id = ?", (failed_under, row_id))

    def requeue_dead(self, channel: str, statuses: Sequence[int], unless_under: str) -> int:
        """Dead rows refused with one of ``statuses`` under another tag go back in line (the cause was fixed)."""
        marks = ",".join("?" * len(statuses))
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, finished_at = NULL"  # noqa: S608
                f" WHERE channel = ? AND state = 'dead' AND last_status IN ({marks}) AND failed_under IS NOT ?",
                (self.clock(), channel, *statuses, unless_under),
            )
        return cursor.rowcount

    def retry_now_failed_since(self, channel: str, since: float) -> int:
        """After an outage: rows charged during it are due at once, not after their backoff."""
        now = self.clock()
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE channel = ? AND state = 'pending'"
                " AND last_failure_at >= ? AND next_attempt_at > ?",
                (now, channel, since, now),
            )
        return cursor.rowcount

    def _finish(
        self, conn: sqlite3.Connection, row_ids: Sequence[int], state: State, status: int | None, error: str | None
    ) -> None:
        conn.executemany(
            "UPDATE outbox SET state = ?, finished_at = ?, last_status = COALESCE(?, last_status), last_error = ?"
            " WHERE id = ? AND state = 'pending'",
            [(state, self.clock(), status, error[:ERROR_KEPT_CHARS] if error else None, row_id) for row_id in row_ids],
        )

    def _channel_of(self, row_id: int) -> str:
        return str(self.db.connection().execute("SELECT channel FROM outbox WHERE id = ?", (row_id,)).fetchone()[0])

    # -- retention ----------------------------------------------------------------------------

    def pending_session_ids(self, conn: sqlite3.Connection) -> set[str]:
        """Sessions with something still waiting in any channel keep their files."""
        rows = conn.execute("SELECT DISTINCT session_id FROM outbox WHERE state = 'pending' AND session_id IS NOT NULL")
        return {row[0] for row in rows}

    def prune(self, now: float) -> int:
        """Forget finished rows older than their channel's keep time."""
        removed = 0
        with self.db.transaction() as conn:
            for spec in self.channels.values():
                cursor = conn.execute(
                    "DELETE FROM outbox WHERE channel = ? AND state != 'pending' AND finished_at < ?",
                    (spec.name, now - spec.keep_finished_s),
                )
                removed += cursor.rowcount
        if removed:
            logger.info("outbox: pruned %d finished rows", removed)
        return removed

    # -- what others read ---------------------------------------------------------------------

    def depth(self, channel: str, conn: sqlite3.Connection | None = None) -> int:
        return int(
            (conn or self.db.connection())
            .execute("SELECT COUNT(*) FROM outbox WHERE channel = ? AND state = 'pending'", (channel,))
            .fetchone()[0]
        )

    def counts(self, channel: str) -> dict[str, int]:
        rows = self.db.connection().execute(
            "SELECT state, COUNT(*) FROM outbox WHERE channel = ? GROUP BY state", (channel,)
        )
        return {state: count for state, count in rows.fetchall()}

    def state_of(self, channel: str, session_id: str) -> str | None:
        row = self.db.connection().execute(
            "SELECT state FROM outbox WHERE channel = ? AND session_id = ? ORDER BY id DESC LIMIT 1",
            (channel, session_id),
        ).fetchone()
        return row[0] if row else None

    def row_of(self, channel: str, session_id: str) -> int | None:
        row = self.db.connection().execute(
            "SELECT id FROM outbox WHERE channel = ? AND session_id = ? ORDER BY id DESC LIMIT 1",
            (channel, session_id),
        ).fetchone()
        return int(row[0]) if row else None

    def sends(self, row_id: int) -> int:
        row = self.db.connection().execute("SELECT sends FROM outbox WHERE id = ?", (row_id,)).fetchone()
        return int(row[0]) if row else 0

    def dead_letters(self, channel: str, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first: which rows were given up, with the reason."""
        rows = self.db.connection().execute(
            "SELECT session_id, last_status, last_error, finished_at FROM outbox WHERE channel = ? AND state = 'dead'"
            " ORDER BY finished_at DESC LIMIT ?",
            (channel, limit),
        )
        return [
            {"session_id": r["session_id"], "status": r["last_status"], "error": r["last_error"],
             "time": utc_iso(r["finished_at"])}
            for r in rows.fetchall()
        ]
