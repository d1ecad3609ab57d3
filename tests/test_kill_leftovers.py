"""What a SIGKILL leaves behind is cleaned on the next start: no file without a row, no stale overlay."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from edge.config import load_config
from edge.daemon.wiring import build
from tests.booth_support import REPO, VALID_IMEI, db_rows, wait_for, write_config

# A process that notes and writes a photo as the session worker does, then dies before its row.
KILLED_MID_PHOTO = """
import os, signal, sys
from pathlib import Path
from edge.spool.db import Database
from edge.spool.files import atomic_write
from edge.spool.sessions import SessionStore
store = SessionStore(Database(Path(sys.argv[1]) / "spool.db"), Path(sys.argv[1]) / "images")
session = store.create(sys.argv[2], "cli")
rel = "%s/front/1_front-1.jpg" % sys.argv[2]
store.journal.claim(lambda ms: [rel])
atomic_write(store.images_root / rel, b"a complete photo")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_photo_written_without_its_row_is_removed_on_start(tmp_path: Path, booth_images: Path) -> None:
    config = load_config(write_config(tmp_path / "cfg", booth_images))
    state = config.booth.state_dir
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_PHOTO, str(state), VALID_IMEI], cwd=REPO)
    assert killed.returncode == -signal.SIGKILL
    orphan = state / "images" / VALID_IMEI / "front" / "1_front-1.jpg"
    assert orphan.read_bytes() == b"a complete photo"
    daemon = build(config)
    try:
        assert not orphan.exists()
        assert db_rows(state, "SELECT COUNT(*) FROM images") == [(0,)]
    finally:
        daemon.close()


def test_a_grading_cut_short_leaves_no_stale_overlay(tmp_path: Path, booth_images: Path) -> None:
    config_path = write_config(tmp_path / "cfg", booth_images, shots=2)
    state = tmp_path / "cfg" / "state"
    daemon = build(load_config(config_path))
    store = daemon.store
    # The state a kill mid-grading leaves: three photos stored, one overlay of them written.
    session = store.create(VALID_IMEI, "cli", status="grading")
    photos = sorted((booth_images / "front").iterdir())[:2] + sorted((booth_images / "back").iterdir())[:1]
    for shot, (section, photo) in enumerate(zip(["front", "front", "back"], photos, strict=True)):
        store.add_image(session, section, shot if section == "front" else 0, photo.read_bytes())
    stale = store.add_image(session, "front", 0, b"half an old overlay", kind="overlay")
    daemon.close()

    daemon = build(load_config(config_path))
    daemon.start()
    try:
        wait_for(lambda: daemon.store.get(session.id).finished, timeout=120)
        overlays = db_rows(state, "SELECT path FROM images WHERE session_id = ? AND kind = 'overlay'", (session.id,))
        assert len(overlays) == 3
        assert (stale.path,) not in overlays
        assert not (state / "images" / stale.path).exists()
    finally:
        daemon.stop()
        daemon.close()
