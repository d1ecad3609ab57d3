from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from edge.config.mqtt import MqttConfig
from edge.config.storage import StorageConfig
from edge.events import EventBus
from edge.publish import mqtt_channel
from edge.spool import sessions
from edge.spool.db import Database
from edge.spool.files import atomic_write
from edge.spool.outbox import Outbox
from edge.spool.retention import Retention, Sweeper
from edge.spool.sessions import SessionRecord, SessionStore
from tests.booth_support import VALID_IMEI, wait_for


def test_database_is_wal_with_full_sync(store: SessionStore) -> None:
    conn = store.db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_atomic_write_leaves_only_the_final_file(tmp_path: Path) -> None:
    digest = atomic_write(tmp_path / "a" / "img.jpg", b"payload")
    assert (tmp_path / "a" / "img.jpg").read_bytes() == b"payload"
    assert len(digest) == 64
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["img.jpg"]


def outbox_of(store: SessionStore) -> Outbox:
    return Outbox(store.db, EventBus("b"), [mqtt_channel(MqttConfig(), threading.Event())])


def retention_of(store: SessionStore, config: StorageConfig, **kwargs: Sequence[Sweeper]) -> Retention:
    return Retention(store, config, EventBus("b"), outbox_of(store), store.journal, **kwargs)


def test_a_write_cut_before_its_row_leaves_nothing_after_the_next_start(store: SessionStore) -> None:
    session = store.create(VALID_IMEI, "test")
    kept = store.add_image(session, "front", 0, b"whole")
    # What a crash between the file and its row leaves: the note, the file, a temp file beside it.
    orphan = f"{VALID_IMEI}/back/1_back-1.jpg"
    store.journal.claim(lambda ms: [orphan])
    atomic_write(store.images_root / orphan, b"orphan")
    (store.images_root / f"{VALID_IMEI}/back/.1_back-1.jpg.abc.tmp").write_bytes(b"half")
    assert store.journal.recover() == 1
    assert not (store.images_root / VALID_IMEI / "back").exists()  # the folder went with its last file
    assert (store.images_root / kept.path).read_bytes() == b"whole"
    assert store.journal.recover() == 0


def test_a_delete_cut_after_its_rows_leaves_no_orphan_files(store: SessionStore) -> None:
    session = store.create(VALID_IMEI, "test")
    image = store.add_image(session, "front", 0, b"x")
    with store.db.transaction() as conn:  # what retention commits before it removes the files
        store.journal.note(conn, [image.path])
        conn.execute("DELETE FROM sessions WHERE id = ?", (session.id,))
    assert (store.images_root / image.path).exists()  # the crash came here
    store.journal.recover()
    assert list(store.images_root.iterdir()) == []  # no file, no empty <imei>/ folder


def test_migration_steps_are_statements_never_a_script_cut_at_semicolons(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    db.migrate("comp", ("CREATE TABLE t (a TEXT DEFAULT 'x;y')", ["INSERT INTO t DEFAULT VALUES"]))
    assert db.connection().execute("SELECT a FROM t").fetchone()[0] == "x;y"
    db.close()


def test_image_is_on_disk_with_its_checksum_before_it_is_listed(store: SessionStore) -> None:
    session = store.create(VALID_IMEI, "test")
    image = store.add_image(session, "front", 0, b"\xff\xd8jpeg-bytes")
    assert image.path.startswith(f"{VALID_IMEI}/front/")
    assert (store.images_root / image.path).read_bytes() == b"\xff\xd8jpeg-bytes"
    assert store.images(session.id) == [image]


def test_migrations_apply_once_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    steps = ("CREATE TABLE t (a INTEGER)", "ALTER TABLE t ADD COLUMN b TEXT")
    db.migrate("comp", steps)
    db.migrate("comp", steps)
    assert [r[1] for r in db.connection().execute("PRAGMA table_info(t)")] == ["a", "b"]
    with pytest.raises(RuntimeError, match="newer than this software"):
        db.migrate("comp", steps[:1])


def test_on_finished_hooks_run_in_the_same_transaction(tmp_path: Path) -> None:
    db = Database(tmp_path / "spool.db")
    db.migrate("hooked", ("CREATE TABLE hooked (session_id TEXT)",))
    seen: list[SessionRecord] = []

    def enqueue(conn: sqlite3.Connection, record: SessionRecord) -> None:
        conn.execute("INSERT INTO hooked VALUES (?)", (record.id,))
        seen.append(record)

    def exploding(conn: sqlite3.Connection, record: SessionRecord) -> None:
        raise RuntimeError("outbox full")

    fine = SessionStore(db, tmp_path / "images", on_finished=[enqueue])
    ok = fine.create(VALID_IMEI, "test")
    fine.finish(ok.id, "graded", {"grade": "A"}, grade="A")
    assert seen[-1].status == "graded"
    store = SessionStore(db, tmp_path / "images", on_finished=[enqueue, exploding])
    bad = store.create(VALID_IMEI, "test")
    with pytest.raises(RuntimeError):
        store.finish(bad.id, "graded", {"grade": "B"}, grade="B")
    rows = [r[0] for r in store.db.connection().execute("SELECT session_id FROM hooked")]
    assert rows == [ok.id]
    assert store.get(bad.id).status == "capturing"  # rolled back: result and outbox row together


def test_unfinished_sessions_are_listed_for_recovery(store: SessionStore) -> None:
    a = store.create(VALID_IMEI, "test")
    b = store.create(VALID_IMEI, "test")
    store.finish(b.id, "failed", None, reason="x")
    assert [s.id for s in store.unfinished()] == [a.id]


def test_retention_sweeps_on_a_worker_of_its_own_every_interval_until_stopped(store: SessionStore) -> None:
    swept: list[float] = []

    def sweeper(now: float) -> int:
        swept.append(now)
        return 0

    retention = retention_of(store, StorageConfig(sweep_interval_s=0.2), sweepers=[sweeper])
    assert [w.name for w in retention.workers] == ["retention"]
    retention.start()
    try:
        wait_for(lambda: len(swept) >= 3, timeout=30)  # at start, then every interval
    finally:
        retention.stop()
    assert not retention.worker.alive()
    after = len(swept)
    time.sleep(0.5)
    assert len(swept) == after


def test_retention_deletes_only_delivered_sessions(store: SessionStore) -> None:
    retention = retention_of(store, StorageConfig(retention_days=1))
    old_delivered = store.create(VALID_IMEI, "test")
    old_pending = store.create(VALID_IMEI, "test")
    fresh = store.create(VALID_IMEI, "test")
    for session in (old_delivered, old_pending, fresh):
        store.add_image(session, "front", 0, b"x" * 1000)
        store.finish(session.id, "graded", {}, grade="A")
    store.db.connection().execute(
        "UPDATE sessions SET created_at = created_at - 3 * 86400 WHERE id IN (?, ?)", (old_delivered.id, old_pending.id)
    )
    with store.db.transaction() as conn:
        retention.outbox.enqueue(conn, "mqtt", old_pending.id, "result", {}, topic="t")
    assert retention.sweep() == 1
    assert store.get(fresh.id) is not None
    assert store.get(old_delivered.id) is None
    assert store.get(old_pending.id) is not None
    assert len(store.images(old_pending.id)) == 1
    # The deleted session's file went after its row, and its <imei>/<section>/ folders are empty: gone.
    assert sorted(p.name for p in (store.images_root / VALID_IMEI / "front").iterdir()) == sorted(
        image.path.rsplit("/", 1)[1] for s in (old_pending, fresh) for image in store.images(s.id)
    )


def test_a_clock_set_years_forward_deletes_only_what_was_delivered(store: SessionStore) -> None:
    retention = retention_of(store, StorageConfig(retention_days=30))
    delivered, unsent, in_review = (store.create(VALID_IMEI, "test") for _ in range(3))
    for session, status in ((delivered, "graded"), (unsent, "graded"), (in_review, "review")):
        store.add_image(session, "front", 0, b"x" * 1000)
        store.finish(session.id, status, {}, grade="A" if status == "graded" else None)
    with store.db.transaction() as conn:
        retention.outbox.enqueue(conn, "mqtt", unsent.id, "result", {}, topic="t")
    assert retention.sweep(now=time.time() + 10 * 365 * 86400) == 1
    assert store.get(delivered.id) is None
    assert [len(store.images(s.id)) for s in (unsent, in_review)] == [1, 1]


def test_retention_quota_removes_oldest_delivered_first(store: SessionStore) -> None:
    retention = retention_of(store, StorageConfig(quota_mb=64))
    sessions = []
    for _ in range(3):
        session = store.create(VALID_IMEI, "test")
        store.add_image(session, "front", 0, b"x" * (30 * 1024 * 1024))
        store.finish(session.id, "graded", {}, grade="A")
        sessions.append(session)
        time.sleep(0.01)
    assert retention.sweep() == 1
    assert store.get(sessions[0].id) is None
    assert store.get(sessions[2].id) is not None


def test_a_disk_filling_with_undelivered_photos_frees_room_before_the_booth_would_refuse_sessions(
    store: SessionStore,
) -> None:
    # Weeks without a network: every result waits, and what the booth keeps fills the disk. Free
    # disk is that of a 100 MB card holding the images; the booth would refuse sessions under 16 MB.
    config = StorageConfig(min_free_mb=16, emergency_free_mb=40)
    retention = retention_of(store, config)
    events: list[dict] = []
    retention.events.subscribe(events.append)
    retention.free_mb = lambda: 100 - retention.images_mb()  # type: ignore[method-assign]
    sessions = {}
    for name in ("unsent-old", "review", "delivered", "unsent-new"):
        session = store.create(VALID_IMEI, "test")
        store.add_image(session, "front", 0, b"x" * (15 * 1024 * 1024))
        reviewed = name == "review"
        store.finish(session.id, "review" if reviewed else "graded", {}, grade=None if reviewed else "A")
        if name.startswith("unsent"):
            with store.db.transaction() as conn:
                retention.outbox.enqueue(conn, "mqtt", session.id, "result", {}, topic="t")
        store.db.connection().execute(
            "UPDATE sessions SET created_at = ? WHERE id = ?", (time.time() - 100 + len(sessions), session.id)
        )
        sessions[name] = session.id

    def kept() -> dict[str, int | None]:
        return {n: None if store.get(s) is None else len(store.images(s)) for n, s in sessions.items()}

    assert retention.sweep() == 0  # 40 MB free: nothing goes
    assert kept() == {"unsent-old": 1, "review": 1, "delivered": 1, "unsent-new": 1}

    later = store.create(VALID_IMEI, "test")
    store.add_image(later, "front", 0, b"x" * (20 * 1024 * 1024))  # 20 MB free: 20 MB must go
    assert retention.sweep() == 1
    # The delivered session first, whole; then the photos (never the row) of the oldest unsent.
    assert kept() == {"unsent-old": 0, "review": 1, "delivered": None, "unsent-new": 1}
    assert [(e["type"], e["session_id"], e["waiting"]) for e in events] == [
        ("retention_emergency", sessions["unsent-old"], "undelivered")
    ]

    store.add_image(later, "front", 1, b"x" * (40 * 1024 * 1024))  # 10 MB free: a review's photos go last
    retention.sweep()
    assert kept() == {"unsent-old": 0, "review": 0, "delivered": None, "unsent-new": 0}
    assert [e["session_id"] for e in events[1:]] == [sessions["unsent-new"], sessions["review"]]
    assert retention.free_mb() >= config.emergency_free_mb


def test_an_emergency_level_under_the_refusal_level_is_raised_above_it_and_said(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    # As a config written before the emergency had to sit above min_free_mb has it: it still starts.
    config = StorageConfig(min_free_mb=512, emergency_free_mb=128)
    with caplog.at_level(logging.WARNING, logger="edge.spool.retention"):
        retention_of(store, config)
    assert config.emergency_level_mb == 768
    assert "it starts at 768 MB free instead" in caplog.text
    assert StorageConfig(min_free_mb=512, emergency_free_mb=600).emergency_level_mb == 600


def test_retention_runs_component_sweepers_with_the_sweep_time(store: SessionStore) -> None:
    seen: list[float] = []
    retention = retention_of(store, StorageConfig(), sweepers=[lambda now: seen.append(now) or 0])
    retention.sweep(now=1234.0)
    assert seen == [1234.0]


def test_a_finished_threads_connection_is_closed(tmp_path: Path) -> None:
    import gc
    import os
    import threading

    db = Database(tmp_path / "spool.db")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        worker = threading.Thread(target=lambda: db.connection().execute("SELECT 1").fetchone())
        worker.start()
        worker.join()
    gc.collect()
    # A connection per finished thread would hold at least one descriptor each.
    assert len(os.listdir("/proc/self/fd")) - before < 5
    db.close()


def test_retention_prunes_delivered_outbox_rows_after_their_keep_time(store: SessionStore) -> None:
    retention = retention_of(store, StorageConfig())
    outbox = retention.outbox
    ids = [store.create(VALID_IMEI, "test").id for _ in range(3)]
    with store.db.transaction() as conn:
        for sid in ids:
            outbox.enqueue(conn, "mqtt", sid, "result", {"n": sid}, topic=f"sessions/{sid}")
    outbox.ack([row.id for row in outbox.claim_due("mqtt", 2)])
    keep_s = MqttConfig().outbox_keep_delivered_days * 86400
    retention.sweep(now=time.time() + keep_s / 2)
    assert outbox.counts("mqtt") == {"done": 2, "pending": 1}
    retention.sweep(now=time.time() + keep_s + 60)
    assert outbox.counts("mqtt") == {"pending": 1}  # the undelivered row stays
    assert [row.session_id for row in outbox.claim_due("mqtt", 10)] == ids[2:]


def test_after_commit_announces_only_what_was_committed(tmp_path: Path) -> None:
    db = Database(tmp_path / "spool.db")
    heard: list[str] = []
    with db.transaction() as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        db.after_commit(lambda: heard.append("kept"))
        assert heard == []  # not before the commit
    assert heard == ["kept"]
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        db.after_commit(lambda: heard.append("rolled back"))
        raise RuntimeError("the write fails")
    with db.transaction():
        pass
    assert heard == ["kept"]  # the rolled-back announcement never runs, not even at the next commit
    db.after_commit(lambda: heard.append("no transaction"))
    assert heard == ["kept", "no transaction"]
    db.close()


def test_a_sessions_overlays_are_stored_with_one_sync_per_file_and_folder_and_two_commits(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = store.create(VALID_IMEI, "test")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    commits = 0
    real_transaction = store.db.transaction

    @contextlib.contextmanager
    def counted() -> Iterator[sqlite3.Connection]:
        nonlocal commits
        with real_transaction() as conn:
            yield conn
        commits += 1

    monkeypatch.setattr(store.db, "transaction", counted)
    overlays = [("front", shot, f"front {shot}".encode()) for shot in range(5)] + [("back", 0, b"back 0")]
    records = store.add_images(session, overlays, kind="overlay")
    assert len(synced) == 6 + 2  # each file, and each of the two section folders once
    assert commits == 2  # the notes, then the rows
    assert [(r.section, r.shot, r.kind) for r in records] == [(s, n, "overlay") for s, n, _ in overlays]
    assert [(store.images_root / r.path).read_bytes() for r in records] == [data for *_, data in overlays]
    assert store.images(session.id, "overlay") == records
    assert store.db.connection().execute("SELECT COUNT(*) FROM file_journal").fetchone()[0] == 0


def test_a_batch_cut_by_a_full_disk_leaves_no_file_no_row_and_no_note(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = store.create(VALID_IMEI, "test")
    written: list[Path] = []

    def filling(path: Path, data: bytes, sync_folder: bool = True) -> str:
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        return atomic_write(path, data, sync_folder)

    monkeypatch.setattr(sessions, "atomic_write", filling)
    with pytest.raises(OSError) as raised:
        store.add_images(session, [("front", shot, b"x" * 100) for shot in range(4)], kind="overlay")
    assert raised.value.errno == errno.ENOSPC
    assert len(written) == 2 and not any(p.exists() for p in written)
    assert list(store.images_root.iterdir()) == []
    assert store.images(session.id) == []
    assert store.db.connection().execute("SELECT COUNT(*) FROM file_journal").fetchone()[0] == 0
