from __future__ import annotations

import os
import time
from pathlib import Path

from edge.api.uploads import UploadStore
from edge.spool.db import Database
from tests.booth_support import VALID_IMEI


def test_unprocessed_uploads_expire_but_a_linked_session_copy_stays(tmp_path: Path) -> None:
    db = Database(tmp_path / "spool.db")
    store = UploadStore(db, tmp_path / "images")
    old = store.save(b"\xff\xd8old", "front", VALID_IMEI, "a.jpg", lambda p: f"http://x/{p}")
    session_copy = tmp_path / "images" / "session-copy.jpg"
    os.link(tmp_path / "images" / old.path, session_copy)
    cutoff = time.time()
    new = store.save(b"\xff\xd8new", "back", None, "b.jpg", lambda p: f"http://x/{p}")
    db.connection().execute("UPDATE uploads SET created_at = created_at + 10 WHERE path = ?", (new.path,))
    assert store.expire(cutoff + 1) == 1
    assert not (tmp_path / "images" / old.path).exists()
    # The row stays, marked, so /api/process can answer 410 rather than "not issued here".
    gone = store.by_url(old.url)
    assert gone is not None and gone.expired_at is not None
    assert store.expire(cutoff + 1) == 0  # marked once
    assert store.by_path(new.path) is not None and store.by_path(new.path).expired_at is None
    assert session_copy.read_bytes() == b"\xff\xd8old"
    db.close()
