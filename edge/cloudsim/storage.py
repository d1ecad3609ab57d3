"""The simulator's storage: uploaded files under a folder, what it issued and answered in SQLite."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from edge.spool.files import atomic_write

SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
MAX_FILENAME = 100
DEFAULT_FILENAME = "image.jpg"
NO_IMEI = "no-imei"

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    path TEXT PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    imei TEXT,
    section TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    imei TEXT NOT NULL,
    response_json TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


def safe_filename(name: str | None) -> str:
    """The client's file name reduced to a plain name: never a path, never hidden."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = SAFE_CHARS.sub("_", base).lstrip(".")[-MAX_FILENAME:]
    return cleaned or DEFAULT_FILENAME


class SimStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.images = root / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(root / "cloud.db", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def store_upload(self, imei: str | None, section: str, filename: str, data: bytes, base_url: str) -> dict[str, Any]:
        """Keep the file at ``<imei>/<section>/<epoch-ms>_<filename>`` and remember the URL issued."""
        with self._lock:
            now_ms = int(time.time() * 1000)
            while True:
                path = f"{imei or NO_IMEI}/{section}/{now_ms}_{filename}"
                if self._db.execute("SELECT 1 FROM uploads WHERE path = ?", (path,)).fetchone() is None:
                    break
                now_ms += 1  # same name in the same millisecond: the path must stay unique
            atomic_write(self.images / path, data)
            url = f"{base_url}/images/{path}"
            self._db.execute(
                "INSERT INTO uploads (path, url, imei, section, size, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (path, url, imei, section, len(data), time.time()),
            )
        return {"success": True, "url": url, "path": path, "size": len(data), "section": section}

    def upload_by_url(self, url: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM uploads WHERE url = ?", (url,)).fetchone()
        return dict(row) if row else None

    def upload_by_path(self, path: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM uploads WHERE path = ?", (path,)).fetchone()
        return dict(row) if row else None

    def read(self, path: str) -> bytes:
        return (self.images / path).read_bytes()

    def add_session(self, session_id: str, imei: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions (id, imei, response_json, created_at) VALUES (?, ?, ?, ?)",
                (session_id, imei, json.dumps(response), time.time()),
            )

    def counts(self) -> dict[str, Any]:
        """Totals and per-IMEI counts of what was stored (tests check exactly-once with these)."""
        with self._lock:
            uploads = dict(self._db.execute("SELECT COALESCE(imei, ''), COUNT(*) FROM uploads GROUP BY imei"))
            sessions = dict(self._db.execute("SELECT imei, COUNT(*) FROM sessions GROUP BY imei"))
        return {
            "uploads": sum(uploads.values()),
            "sessions": sum(sessions.values()),
            "uploads_by_imei": uploads,
            "sessions_by_imei": sessions,
        }
