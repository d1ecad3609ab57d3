"""Images uploaded through /api/upload: checked, written atomically, and remembered by URL.

An upload is stored under the spool's images root with the contract's path form
``<imei>/<section>/<epoch-ms>_<filename>``. An upload without an IMEI goes under
``unassigned/<section>/<epoch-ms>_<filename>``: the contract makes the IMEI optional on upload and
the process call names it later. The ``uploads`` table is the list of URLs this booth issued; a
``url`` in /api/process is looked up there and never fetched.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.imageinfo import header_size, sniff
from edge.spool.db import Database
from edge.spool.files import atomic_write
from edge.spool.sessions import SAFE_NAME, image_path

UNASSIGNED_DIR = "unassigned"
MAX_FILENAME = 96
DEFAULT_STEM = "image"

ImageKind = Literal["jpeg", "png"]
EXTENSIONS: dict[ImageKind, tuple[str, ...]] = {"jpeg": (".jpg", ".jpeg"), "png": (".png",)}
MEDIA_TYPES: dict[ImageKind, str] = {"jpeg": "image/jpeg", "png": "image/png"}

JPEG_EOI = b"\xff\xd9"

MIGRATIONS = (
    """
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL UNIQUE,
        imei TEXT,
        section TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        session_id TEXT
    );
    CREATE INDEX uploads_created ON uploads (created_at)
    """,
)


class ImageRejected(ValueError):
    """The bytes are not an image this booth accepts; the message is meant for the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    id: int
    path: str
    url: str
    imei: str | None
    section: str
    media_type: str
    size: int
    sha256: str
    created_at: float
    session_id: str | None


def sanitize_filename(name: str | None, kind: ImageKind) -> str:
    """A plain file name made from whatever the client sent, ending in the detected type's extension.

    Only the last component of either separator survives, so ``../../x`` or ``C:\\x`` cannot
    leave the section folder.
    """
    base = re.split(r"[/\\]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    if f".{ext.lower()}" not in EXTENSIONS[kind]:
        stem = base
        ext = EXTENSIONS[kind][0].lstrip(".")
    stem = stem[: MAX_FILENAME - len(ext) - 1].rstrip("._-") or DEFAULT_STEM
    result = f"{stem}.{ext}"
    assert SAFE_NAME.fullmatch(result), result
    return result


def probe_image(data: bytes) -> tuple[ImageKind, int, int]:
    """The type and size of an image from its header, without decoding its pixels."""
    fmt = sniff(data)
    png_size = header_size(data, "png") if fmt == "png" else None
    if png_size is not None:
        width, height = png_size
        if b"IEND" not in data[-16:]:
            raise ImageRejected("Invalid request: image is a truncated PNG")
        return "png", width, height
    if fmt == "jpeg":
        size = header_size(data, "jpeg")
        if size is None:
            raise ImageRejected("Invalid request: image is a JPEG without a readable frame header")
        # Some encoders pad after EOI; a JPEG cut short has no EOI at all.
        if JPEG_EOI not in data[-64:]:
            raise ImageRejected("Invalid request: image is a truncated JPEG")
        return "jpeg", size[0], size[1]
    raise ImageRejected("Invalid request: image must be a JPEG or PNG file")


def check_image(data: bytes, max_pixels: int) -> ImageKind:
    """Refuse anything but a JPEG/PNG that decodes; the header is read first to refuse pixel bombs."""
    if not data:
        raise ImageRejected("Invalid request: image is empty")
    kind, width, height = probe_image(data)
    if width == 0 or height == 0:
        raise ImageRejected("Invalid request: image has no pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            f"Image too large: {width}x{height} pixels, at most {max_pixels / 1e6:.0f} MP", status=413
        )
    # A reduced decode reads the whole entropy-coded stream at a fraction of the cost of a full one.
    flags = cv2.IMREAD_REDUCED_GRAYSCALE_4 if kind == "jpeg" else cv2.IMREAD_GRAYSCALE
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if decoded is None or decoded.size == 0:
        raise ImageRejected(f"Invalid request: image is not a decodable {kind.upper()}")
    return kind


class UploadStore:
    """The ``uploads`` table and the files it points at, under the spool's images root."""

    def __init__(self, db: Database, images_root: Path) -> None:
        self.db = db
        self.images_root = images_root
        db.migrate("api_uploads", MIGRATIONS)
        # Two uploads of one file name in the same millisecond would share a path: a path is
        # reserved under the lock until its row is in, and the second upload takes the next
        # free millisecond. The slow part (write + fsync) runs outside the lock.
        self._lock = threading.Lock()
        self._reserved: set[str] = set()

    def save(
        self,
        data: bytes,
        section: str,
        imei: str | None,
        filename: str,
        media_type: str,
        url_for: Callable[[str], str],
    ) -> Upload:
        """Store the file atomically, then its row; ``url_for`` makes the URL of a stored path."""
        rel = self._reserve(imei, section, filename)
        target = self.images_root / rel
        url = url_for(rel)
        try:
            digest = atomic_write(target, data)
            now = time.time()
            try:
                with self.db.transaction() as conn:
                    cursor = conn.execute(
                        "INSERT INTO uploads (path, url, imei, section, media_type, size, sha256, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (rel, url, imei, section, media_type, len(data), digest, now),
                    )
            except BaseException:
                target.unlink(missing_ok=True)
                raise
        finally:
            with self._lock:
                self._reserved.discard(rel)
        return Upload(
            int(cursor.lastrowid or 0), rel, url, imei, section, media_type, len(data), digest, now, None
        )

    def _reserve(self, imei: str | None, section: str, filename: str) -> str:
        with self._lock:
            now_ms = int(time.time() * 1000)
            while True:
                rel = self._path(imei, section, filename, now_ms)
                taken = rel in self._reserved or (self.images_root / rel).exists() or self.by_path(rel)
                if not taken:
                    self._reserved.add(rel)
                    return rel
                now_ms += 1

    @staticmethod
    def _path(imei: str | None, section: str, filename: str, now_ms: int) -> str:
        if imei is not None:
            return image_path(imei, section, filename, now_ms)
        if not SAFE_NAME.fullmatch(section) or not SAFE_NAME.fullmatch(filename):
            raise ValueError("image path parts must be plain names")
        return f"{UNASSIGNED_DIR}/{section}/{now_ms}_{filename}"

    def by_url(self, url: str) -> Upload | None:
        row = self.db.connection().execute("SELECT * FROM uploads WHERE url = ?", (url,)).fetchone()
        return Upload(**dict(row)) if row else None

    def by_path(self, rel: str) -> Upload | None:
        row = self.db.connection().execute("SELECT * FROM uploads WHERE path = ?", (rel,)).fetchone()
        return Upload(**dict(row)) if row else None

    def mark_processed(self, paths: list[str], session_id: str) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE uploads SET session_id = ? WHERE path = ?", [(session_id, p) for p in paths]
            )

    def expire(self, before: float) -> int:
        """Forget uploads older than ``before`` and delete their files.

        A processed upload's session holds its own hard link, so the session's image stays.
        """
        conn = self.db.connection()
        rows = conn.execute("SELECT path FROM uploads WHERE created_at < ?", (before,)).fetchall()
        for row in rows:
            (self.images_root / row["path"]).unlink(missing_ok=True)
        with self.db.transaction() as tx:
            tx.executemany("DELETE FROM uploads WHERE path = ?", [(row["path"],) for row in rows])
        return len(rows)

    def count(self) -> int:
        return int(self.db.connection().execute("SELECT COUNT(*) FROM uploads").fetchone()[0])
