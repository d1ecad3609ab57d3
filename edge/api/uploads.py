"""Images uploaded through /api/upload: checked, written atomically, and remembered by URL.

An upload is stored under the spool's images root with the contract's path form
``<imei>/<section>/<epoch-ms>_<filename>``. An upload without an IMEI goes under
``unassigned/<section>/<epoch-ms>_<filename>``: the contract makes the IMEI optional on upload and
the process call names it later. The ``uploads`` table is the list of paths this booth issued; a
``url`` in /api/process is looked up there by its path (``/api/images/<path>``) and never fetched.
URLs are built per answer, so a new host name or port does not orphan uploads already issued. An
expired upload's file goes but its row stays a while, so a late /api/process hears that the image
was removed, not that it was never issued.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from edge.imageinfo import EXTENSIONS, header_size, progressive_buffer_bytes, sniff
from edge.spool.db import Database
from edge.spool.files import FileJournal, atomic_write
from edge.spool.sessions import SAFE_NAME, image_path

UNASSIGNED_DIR = "unassigned"
MAX_FILENAME = 96
DEFAULT_STEM = "image"
IMAGES_ROUTE = "/api/images/"

ImageKind = Literal["jpeg", "png"]
# How long an expired upload's URL is still recognised (and answered 410) after its file went.
EXPIRED_ROW_KEEP_S = 30 * 86400
# An upload this fresh may be what an /api/process is linking: a disk emergency leaves it be.
LINKING_GRACE_S = 300.0

JPEG_EOI = b"\xff\xd9"
# Of a progressive JPEG's coefficient buffer, per pixel the upload limit allows.
PROGRESSIVE_BYTES_PER_PIXEL = 2
MB = 1024 * 1024

MIGRATIONS = (
    (
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
        )
        """,
        "CREATE INDEX uploads_created ON uploads (created_at)",
    ),
    # v2: nothing read media_type (the file name says it) or session_id; expired rows are kept.
    (
        "ALTER TABLE uploads DROP COLUMN media_type",
        "ALTER TABLE uploads DROP COLUMN session_id",
        "ALTER TABLE uploads ADD COLUMN expired_at REAL",
    ),
    # v3: the path is the upload's identity; its URL is built per answer (host names change).
    (
        """
        CREATE TABLE uploads_v3 (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            imei TEXT,
            section TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            created_at REAL NOT NULL,
            expired_at REAL
        )
        """,
        "INSERT INTO uploads_v3 SELECT id, path, imei, section, size, sha256, created_at, expired_at FROM uploads",
        "DROP TABLE uploads",
        "ALTER TABLE uploads_v3 RENAME TO uploads",
        "CREATE INDEX uploads_created ON uploads (created_at)",
    ),
)


class ImageRejected(ValueError):
    """The upload is not an image this booth accepts (its bytes, or its name); the message is meant
    for the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    path: str
    imei: str | None
    section: str
    size: int
    sha256: str
    created_at: float
    expired_at: float | None  # when retention removed the file; the row stays for a while


def sanitize_filename(name: str | None, kind: ImageKind) -> str:
    """A plain file name made from the name the client sent, ending in the detected type's extension.

    A name with a path in it (``../../x``, ``C:\\x``) is refused: a client that sends one is not
    naming a photo, and the booth writes only where it chooses.
    """
    if name and re.search(r"[/\\]", name):
        raise ImageRejected("Invalid request: the file name must be a name, not a path")
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").lstrip("._-")
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
    if fmt not in ("jpeg", "png"):
        raise ImageRejected("Invalid request: image must be a JPEG or PNG file")
    size = header_size(data, fmt)
    if size is None:
        raise ImageRejected(f"Invalid request: image is a {fmt.upper()} without a readable header")
    # A PNG ends with its IEND chunk; some encoders pad after a JPEG's EOI, a cut JPEG has none.
    end, tail = (b"IEND", data[-16:]) if fmt == "png" else (JPEG_EOI, data[-64:])
    if end not in tail:
        raise ImageRejected(f"Invalid request: image is a truncated {fmt.upper()}")
    return fmt, size[0], size[1]  # type: ignore[return-value]


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
    # A progressive JPEG is decoded from coefficients held for the whole image, whatever the scale:
    # a 1.5 MB file of 8000x8000 pixels takes 370 MB. Two bytes per allowed pixel let a 12 MP
    # camera photo through (72 MB at 4:4:4) and keep such a file out.
    buffer = progressive_buffer_bytes(data) if kind == "jpeg" else 0
    if buffer > PROGRESSIVE_BYTES_PER_PIXEL * max_pixels:
        raise ImageRejected(
            f"Image too large: a progressive JPEG of {width}x{height} pixels needs {buffer / MB:.0f} MB to decode,"
            f" at most {PROGRESSIVE_BYTES_PER_PIXEL * max_pixels / MB:.0f} MB",
            status=413,
        )
    # A reduced decode reads the whole entropy-coded stream at a fraction of the cost of a full one.
    flags = cv2.IMREAD_REDUCED_GRAYSCALE_4 if kind == "jpeg" else cv2.IMREAD_GRAYSCALE
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if decoded is None or decoded.size == 0:
        raise ImageRejected(f"Invalid request: image is not a decodable {kind.upper()}")
    return kind


class UploadStore:
    """The ``uploads`` table and the files it points at, under the spool's images root."""

    def __init__(self, db: Database, images_root: Path, journal: FileJournal) -> None:
        self.db = db
        self.images_root = images_root
        self.journal = journal
        db.migrate("api_uploads", MIGRATIONS)

    def save(
        self,
        data: bytes,
        section: str,
        imei: str | None,
        filename: str,
    ) -> Upload:
        """Note the file, store it atomically, then its row (which clears the note)."""
        # An expired upload's row outlives its file, and its path still names it.
        rel = self.journal.claim(
            lambda ms: [self._path(imei, section, filename, ms)],
            taken=lambda path: self.by_path(path) is not None,
        )[0]
        digest = atomic_write(self.images_root / rel, data)
        now = time.time()
        try:
            with self.db.transaction() as conn:
                self.journal.clear(conn, [rel])
                conn.execute(
                    "INSERT INTO uploads (path, imei, section, size, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (rel, imei, section, len(data), digest, now),
                )
        except BaseException:
            self.journal.remove([rel])
            raise
        return Upload(rel, imei, section, len(data), digest, now, None)

    @staticmethod
    def _path(imei: str | None, section: str, filename: str, now_ms: int) -> str:
        if imei is not None:
            return image_path(imei, section, filename, now_ms)
        if not SAFE_NAME.fullmatch(section) or not SAFE_NAME.fullmatch(filename):
            raise ValueError("image path parts must be plain names")
        return f"{UNASSIGNED_DIR}/{section}/{now_ms}_{filename}"

    def by_url(self, url: str) -> Upload | None:
        """The upload whose image path ``url`` names (``.../api/images/<path>``), expired or not."""
        try:
            route = urlsplit(url).path
        except ValueError:  # not a URL at all (say, an unclosed IPv6 bracket)
            return None
        if not route.startswith(IMAGES_ROUTE):
            return None
        return self.by_path(unquote(route.removeprefix(IMAGES_ROUTE)))

    def by_path(self, rel: str) -> Upload | None:
        """The upload stored at ``rel``, expired or not."""
        row = self.db.connection().execute(
            "SELECT path, imei, section, size, sha256, created_at, expired_at FROM uploads WHERE path = ?", (rel,)
        ).fetchone()
        return Upload(*row) if row else None

    def expire(self, before: float) -> int:
        """Delete the files of uploads older than ``before``; their rows say so for a while, then go.

        The rows are marked (and the files noted) first, so a crash between the two steps leaves a
        row that answers 410 and a note that removes the file on the next start, never a live row
        without its file. A processed upload's session holds its own hard link, so the session's
        image stays.
        """
        now = time.time()
        with self.db.transaction() as tx:
            paths = [
                row["path"]
                for row in tx.execute("SELECT path FROM uploads WHERE created_at < ? AND expired_at IS NULL", (before,))
            ]
            tx.executemany("UPDATE uploads SET expired_at = ? WHERE path = ?", [(now, p) for p in paths])
            tx.execute("DELETE FROM uploads WHERE expired_at < ?", (now - EXPIRED_ROW_KEEP_S,))
            self.journal.note(tx, paths)
        self.journal.remove(paths)
        return len(paths)
