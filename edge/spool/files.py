"""Atomic file writes: a reader or a power cut sees the old file or the new one, never half."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` (temp file in the same folder, fsync, rename, fsync folder).

    Returns the sha256 of what was written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def remove_stale_temp_files(root: Path) -> int:
    """Temp files left by a crash mid-write are never referenced: delete them on start."""
    removed = 0
    if not root.exists():
        return 0
    for tmp in root.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed
