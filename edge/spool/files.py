"""Image files: atomic writes, and a journal so that no crash leaves a file nothing points at.

A file is noted in the journal (committed) before it is written; the row that records it clears
the note in its own transaction. A deletion notes the files in the transaction that deletes their
rows, removes them, then clears the notes. Whatever is still noted at the next start belongs to
no row: ``FileJournal.recover`` removes it, with any temp file beside it. No tree walk is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edge.spool.db import Database

logger = logging.getLogger(__name__)

MIGRATIONS = ("CREATE TABLE file_journal (path TEXT PRIMARY KEY, noted_at REAL NOT NULL)",)
MKDIR_RETRIES = 3


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, sync_folder: bool = True) -> str:
    """Write ``data`` to ``path`` (temp file in the same folder, fsync, rename, fsync folder).

    Returns the sha256 of what was written. A caller writing several files into one folder may
    leave ``sync_folder`` off and fsync the folder once after the last rename.
    """
    for attempt in range(MKDIR_RETRIES):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            break
        except FileNotFoundError:
            # Retention removed the (then empty) folder between mkdir and here: make it again.
            if attempt == MKDIR_RETRIES - 1:
                raise
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if sync_folder:
        fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


class FileJournal:
    """Paths under ``root`` on their way in or out (see the module's doc)."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = root
        db.migrate("file_journal", MIGRATIONS)

    def note(self, conn: sqlite3.Connection, paths: Sequence[str]) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO file_journal (path, noted_at) VALUES (?, ?)", [(p, time.time()) for p in paths]
        )

    def clear(self, conn: sqlite3.Connection, paths: Sequence[str]) -> None:
        conn.executemany("DELETE FROM file_journal WHERE path = ?", [(p,) for p in paths])

    def claim(
        self,
        paths_at: Callable[[int], Sequence[str]],
        taken: Callable[[str], bool] = lambda rel: False,
    ) -> list[str]:
        """Before a write: note the paths ``paths_at(ms)`` names, in a commit of their own (a crash
        mid-write leaves the notes), for the first ms from now on where no file, no note and
        nothing ``taken`` holds any of them.

        Paths carry the millisecond of their write, so two writers of one IMEI in the same
        millisecond would otherwise share one: the second would replace the first's file (or fail
        to link it), and its note could later remove a file that has a row. Checking and noting
        in one write transaction hands each path to one writer.
        """
        ms = int(time.time() * 1000)
        with self.db.transaction() as conn:
            while True:
                paths = list(paths_at(ms))
                if not any(self._held(conn, p) or taken(p) for p in paths):
                    self.note(conn, paths)
                    return paths
                ms += 1

    def _held(self, conn: sqlite3.Connection, rel: str) -> bool:
        noted = conn.execute("SELECT 1 FROM file_journal WHERE path = ?", (rel,)).fetchone()
        return noted is not None or (self.root / rel).exists()

    def remove(self, paths: Sequence[str]) -> int:
        """Remove noted files and their folders left empty, then clear the notes; the bytes freed."""
        freed = 0
        for rel in paths:
            target = self.root / rel
            with contextlib.suppress(FileNotFoundError):
                freed += target.stat().st_size
                target.unlink()
            self._prune_folders(target.parent)
        with self.db.transaction() as conn:
            self.clear(conn, paths)
        return freed

    def recover(self) -> int:
        """On start: remove what a crash left noted (a file without a row), with its temp files."""
        paths = [row[0] for row in self.db.connection().execute("SELECT path FROM file_journal")]
        for rel in paths:
            target = self.root / rel
            if target.parent.is_dir():
                for tmp in target.parent.glob(f".{target.name}.*.tmp"):
                    tmp.unlink(missing_ok=True)
        self.remove(paths)
        if paths:
            logger.warning("removed %d image file(s) left without a record by an interrupted write or delete",
                           len(paths))
        return len(paths)

    def _prune_folders(self, folder: Path) -> None:
        """``<imei>/<section>/`` folders go with their last file (never the root)."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone): the folders above are not empty either
            folder = folder.parent
