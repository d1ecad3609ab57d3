"""Image paths carry the millisecond of their write (``<imei>/<section>/<ms>_<name>``): two writers
of one IMEI in the same millisecond must still get a path each, and never replace or lose the
other's photo."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge.api.uploads import UploadStore
from edge.config import load_config
from edge.daemon.grading import SessionGrading
from edge.events import EventBus
from edge.grade.pipeline import Grader
from edge.spool import sessions
from edge.spool.db import Database
from edge.spool.sessions import SessionStore
from tests.booth_support import VALID_IMEI, write_config

FROZEN_S = 1_764_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    db = Database(tmp_path / "spool.db")
    yield SessionStore(db, tmp_path / "images")
    db.close()


def test_two_sessions_of_one_imei_storing_in_the_same_millisecond_keep_their_own_photos(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions.time, "time", lambda: FROZEN_S)
    first = store.add_image(store.create(VALID_IMEI, "test"), "front", 0, b"first phone")
    second = store.add_image(store.create(VALID_IMEI, "test"), "front", 0, b"second phone")
    assert first.path == f"{VALID_IMEI}/front/{int(FROZEN_S * 1000)}_front-1.jpg"
    assert second.path == f"{VALID_IMEI}/front/{int(FROZEN_S * 1000) + 1}_front-1.jpg"
    assert (store.images_root / first.path).read_bytes() == b"first phone"
    assert (store.images_root / second.path).read_bytes() == b"second phone"


def test_a_path_noted_by_a_write_still_under_way_is_not_handed_out_again(store: SessionStore) -> None:
    first = store.journal.claim(lambda ms: [f"{VALID_IMEI}/back/{ms}_back-1.jpg"], 5)
    second = store.journal.claim(lambda ms: [f"{VALID_IMEI}/back/{ms}_back-1.jpg"], 5)
    assert (first, second) == ([f"{VALID_IMEI}/back/5_back-1.jpg"], [f"{VALID_IMEI}/back/6_back-1.jpg"])


def test_two_api_sessions_linking_one_upload_in_the_same_millisecond_both_keep_it(
    tmp_path: Path, booth_images: Path
) -> None:
    config = load_config(write_config(tmp_path / "cfg", booth_images))
    db = Database(tmp_path / "spool.db")
    store = SessionStore(db, tmp_path / "images")
    grading = SessionGrading(config, store, EventBus("test"), Grader(config.model, config.grading), lambda p: p)
    photo = (booth_images / "front" / "00.jpg").read_bytes()
    upload = UploadStore(db, store.images_root, store.journal).save(photo, "front", VALID_IMEI, "00.jpg")
    linked = []
    for _ in range(2):
        session = store.create(VALID_IMEI, "api", status="linking")
        grading.link_upload(session, "front", 0, upload.path, upload.sha256, now_ms=1_000)
        linked += store.images(session.id)
    assert len({image.path for image in linked}) == 2
    for image in linked:
        assert hashlib.sha256((store.images_root / image.path).read_bytes()).hexdigest() == upload.sha256
    assert store.db.connection().execute("SELECT COUNT(*) FROM file_journal").fetchone()[0] == 0
    db.close()
