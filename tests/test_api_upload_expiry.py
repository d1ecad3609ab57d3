from __future__ import annotations

import os
import time
from pathlib import Path

from edge.api.uploads import UploadStore
from edge.spool.db import Database
from edge.spool.files import FileJournal
from tests.booth_support import VALID_IMEI


def test_unprocessed_uploads_expire_but_a_linked_session_copy_stays(tmp_path: Path) -> None:
    db = Database(tmp_path / "spool.db")
    store = UploadStore(db, tmp_path / "images", FileJournal(db, tmp_path / "images"))
    old = store.save(b"\xff\xd8old", "front", VALID_IMEI, "a.jpg")
    session_copy = tmp_path / "images" / "session-copy.jpg"
    os.link(tmp_path / "images" / old.path, session_copy)
    cutoff = time.time()
    new = store.save(b"\xff\xd8new", "back", None, "b.jpg")
    db.connection().execute("UPDATE uploads SET created_at = created_at + 10 WHERE path = ?", (new.path,))
    assert store.expire(cutoff + 1) == 1
    assert not (tmp_path / "images" / old.path).exists()
    # The row stays, marked, so /api/process can answer 410 rather than "not issued here".
    gone = store.by_url(f"http://any-host:1/api/images/{old.path}")
    assert gone is not None and gone.expired_at is not None
    assert store.expire(cutoff + 1) == 0  # marked once
    assert store.by_path(new.path) is not None and store.by_path(new.path).expired_at is None
    assert session_copy.read_bytes() == b"\xff\xd8old"
    db.close()


def test_an_upload_url_is_found_by_its_path_after_the_booth_is_renamed(tmp_path: Path) -> None:
    db = Database(tmp_path / "spool.db")
    store = UploadStore(db, tmp_path / "images", FileJournal(db, tmp_path / "images"))
    stored = store.save(b"\xff\xd8x", "front", VALID_IMEI, "a.jpg")
    for base in ("http://127.0.0.1:8080", "http://booth-7.local:9000", "https://booth-7.example"):
        found = store.by_url(f"{base}/api/images/{stored.path}")
        assert found is not None and found.path == stored.path
    assert store.by_url(f"http://127.0.0.1:8080/other/{stored.path}") is None
    db.close()
