"""Room kept for the booth's own records: a preallocated file given back when the disk fills.

A full disk must not stop the booth from writing down why a session failed: that write is small,
but SQLite needs room to grow its WAL for it. The reserve file holds that room while the disk has
space; on a disk-full error it is removed and the write tried again, and it is taken back once
the disk has room again.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
from pathlib import Path

from edge.spool.retention import MB

logger = logging.getLogger(__name__)

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException) -> bool:
    """An error that means the disk (or the quota) is full, from a file write or from SQLite."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return False


class DiskReserve:
    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size = size_mb * MB

    @property
    def held(self) -> bool:
        return self.path.exists()

    def hold(self) -> bool:
        """Take the room if it is not held yet; False when the disk has not got it."""
        if self.held:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            if not disk_full(exc):
                raise
            return False
        logger.info("disk reserve of %d MB held", self.size // MB)
        return True

    def release_if_short(self) -> bool:
        """At start: a disk with less free than the reserve gets it back, so the spool can open."""
        if self.held and shutil.disk_usage(self.path.parent).free < self.size:
            return self.release()
        return False

    def release(self) -> bool:
        """Give the room back to the disk; False when there was none held."""
        if not self.held:
            return False
        self.path.unlink()
        logger.warning("disk full: released the %d MB disk reserve to record what happened", self.size // MB)
        return True
