"""Image paths carry the millisecond of their write (``<imei>/<section>/<ms>_<name>``): two writers
of one IMEI in the same millisecond must still get a path each, and never replace or lose the
other's photo."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from edge.api.uploads import UploadStore
from edge.config import load_config
from edge.daemon.grading import SessionGrading
from edge.events import EventBus
from edge.grade.pipeline import Grader
from edge.spool.sessions import SessionStore
from tests.booth_support import VALID_IMEI, write_config

FROZEN_MS = 1_764_000_000_000


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write in the test falls in the same millisecond."""
    monkeypatch.setattr(time, "time", lambda: FROZEN_MS / 1000)


def test_two_sessions_of_one_imei_storing_in_the_same_millisecond_keep_their_own_photos(
    store: SessionStore, frozen_clock: None
) -> None:
    first = store.add_image(store.create(VALID_IMEI, "test"), "front", 0, b"first phone")
    second = store.add_image(store.create(VALID_IMEI, "test"), "front", 0, b"second phone")
    assert first.path == f"{VALID_IMEI}/front/{FROZEN_MS}_front-1.jpg"
    assert second.path == f"{VALID_IMEI}/front/{FROZEN_MS + 1}_front-1.jpg"
    assert (store.images_root / first.path).read_bytes() == b"first phone"
    assert (store.images_root / second.path).read_bytes() == b"second phone"


def test_a_path_noted_by_a_write_still_under_way_is_not_handed_out_again(
    store: SessionStore, frozen_clock: None
) -> None:
    first = store.journal.claim(lambda ms: [f"{VALID_IMEI}/back/{ms}_back-1.jpg"])
    second = store.journal.claim(lambda ms: [f"{VALID_IMEI}/back/{ms}_back-1.jpg"])
    assert first == [f"{VALID_IMEI}/back/{FROZEN_MS}_back-1.jpg"]
    assert second == [f"{VALID_IMEI}/back/{FROZEN_MS + 1}_back-1.jpg"]


def test_two_api_sessions_linking_one_upload_in_the_same_millisecond_both_keep_it(
    tmp_path: Path, booth_images: Path, store: SessionStore, frozen_clock: None
) -> None:
    config = load_config(write_config(tmp_path / "cfg", booth_images))
    grading = SessionGrading(config, store, EventBus("test"), Grader(config.model, config.grading), lambda p: p)
    photo = (booth_images / "front" / "00.jpg").read_bytes()
    upload = UploadStore(store.db, store.images_root, store.journal).save(photo, "front", VALID_IMEI, "00.jpg")
    linked = []
    for _ in range(2):
        session = store.create(VALID_IMEI, "api", status="linking")
        grading.link_upload(session, "front", 0, upload.path, upload.sha256)
        linked += store.images(session.id)
    assert [image.path for image in linked] == [
        f"{VALID_IMEI}/front/{FROZEN_MS}_front-1.jpg",
        f"{VALID_IMEI}/front/{FROZEN_MS + 1}_front-1.jpg",
    ]
    for image in linked:
        assert hashlib.sha256((store.images_root / image.path).read_bytes()).hexdigest() == upload.sha256
    assert store.db.connection().execute("SELECT COUNT(*) FROM file_journal").fetchone()[0] == 0
