"""SQLite in WAL mode with synchronous=FULL, one connection per thread, migrations per component.

Each component (the spool itself, the file journal, the outbox, the cloud channel's uploads, the
local API's uploads) owns its tables and lists its own migrations, so components evolve their
schema independently.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000

# One schema version: a single SQL statement, a list of them, or a function given the open
# transaction (for a step that depends on what is already there). Never a script cut at ';'.
Step = str | Sequence[str] | Callable[[sqlite3.Connection], None]


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        # Each connection with the thread that uses it. The API and the control socket run handlers
        # on short-lived threads; a new thread adopts the connection of a finished one, so the
        # count stays at the most threads alive at once. (Closing a connection is no cure: SQLite
        # keeps the file descriptor of a closed connection while another holds a lock on the file.)
        self._connections: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        conn = self.connection()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at REAL NOT NULL,"
            " PRIMARY KEY (component, version))"
        )

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections must not cross threads)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            me = weakref.ref(threading.current_thread())
            with self._lock:
                for index, (owner, candidate) in enumerate(self._connections):
                    thread = owner()
                    if thread is None or not thread.is_alive():
                        conn = candidate
                        self._connections[index] = (me, conn)
                        break
                else:
                    conn = self._open()
                    self._connections.append((me, conn))
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: writers queue up instead of failing on a lock upgrade."""
        conn = self.connection()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._pending().clear()
            raise
        callbacks, self._local.after_commit = self._pending(), []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("after-commit callback failed")

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this thread's open transaction commits, never if it rolls back.

        For announcements (events, wake-ups) of what a transaction writes: a rollback must not
        leave them announced. Outside a transaction the callback runs at once.
        """
        if not self.connection().in_transaction:
            callback()
            return
        self._pending().append(callback)

    def _pending(self) -> list[Callable[[], None]]:
        pending: list[Callable[[], None]] | None = getattr(self._local, "after_commit", None)
        if pending is None:
            pending = self._local.after_commit = []
        return pending

    def migrate(self, component: str, steps: Sequence[Step]) -> None:
        """Apply ``steps[i]`` for versions not yet applied to ``component``, all in one transaction."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?", (component,)
            ).fetchone()
            current = int(row[0])
            if current > len(steps):
                raise RuntimeError(
                    f"database {self.path} has {component} schema v{current}, newer than this software "
                    f"(v{len(steps)}): install the newer release or restore a backup"
                )
            for version, step in enumerate(steps[current:], start=current + 1):
                if callable(step):
                    step(conn)
                else:
                    # executescript() would COMMIT the surrounding transaction; execute() runs one
                    # statement and refuses a string holding more.
                    for statement in (step,) if isinstance(step, str) else step:
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, julianday('now'))",
                    (component, version),
                )
                logger.info("applied %s schema migration v%d", component, version)

    def close(self) -> None:
        with self._lock:
            for _owner, conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

