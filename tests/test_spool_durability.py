from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge.config.load import load_config
from edge.config.storage import StorageConfig
from edge.daemon.booth import Booth
from edge.events import EventBus
from edge.publish import MqttService
from edge.spool.db import Database
from edge.spool.files import atomic_write, remove_stale_temp_files
from edge.spool.retention import Retention
from edge.spool.sessions import SessionRecord, SessionStore
from tests.booth_support import VALID_IMEI, write_config


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    db = Database(tmp_path / "spool.db")
    yield SessionStore(db, tmp_path / "images")
    db.close()


def test_database_is_wal_with_full_sync(store: SessionStore) -> None:
    conn = store.db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_atomic_write_leaves_only_the_final_file(tmp_path: Path) -> None:
    digest = atomic_write(tmp_path / "a" / "img.jpg", b"payload")
    assert (tmp_path / "a" / "img.jpg").read_bytes() == b"payload"
    assert len(digest) == 64
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["img.jpg"]


def test_stale_temp_files_from_a_crash_are_removed(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / ".img.jpg.abc.tmp").write_bytes(b"half")
    (tmp_path / "x" / "keep.jpg").write_bytes(b"whole")
    assert remove_stale_temp_files(tmp_path) == 1
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.jpg"]


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


def test_result_hook_runs_in_the_same_transaction(store: SessionStore) -> None:
    store.db.migrate("outbox", ("CREATE TABLE outbox (session_id TEXT)",))
    seen: list[SessionRecord] = []

    def enqueue(conn: sqlite3.Connection, record: SessionRecord) -> None:
        conn.execute("INSERT INTO outbox VALUES (?)", (record.id,))
        seen.append(record)

    def exploding(conn: sqlite3.Connection, record: SessionRecord) -> None:
        raise RuntimeError("outbox full")

    store.add_result_hook(enqueue)
    ok = store.create(VALID_IMEI, "test")
    store.finish(ok.id, "graded", {"grade": "A"}, grade="A")
    assert seen[-1].status == "graded"
    store.add_result_hook(exploding)
    bad = store.create(VALID_IMEI, "test")
    with pytest.raises(RuntimeError):
        store.finish(bad.id, "graded", {"grade": "B"}, grade="B")
    rows = [r[0] for r in store.db.connection().execute("SELECT session_id FROM outbox")]
    assert rows == [ok.id]
    assert store.get(bad.id).status == "capturing"  # rolled back: result and outbox row together


def test_unfinished_sessions_are_listed_for_recovery(store: SessionStore) -> None:
    a = store.create(VALID_IMEI, "test")
    b = store.create(VALID_IMEI, "test")
    store.finish(b.id, "failed", None, reason="x")
    assert [s.id for s in store.unfinished()] == [a.id]


def test_retention_deletes_only_delivered_sessions(store: SessionStore) -> None:
    retention = Retention(store, StorageConfig(retention_days=1), EventBus("b"))
    old_delivered = store.create(VALID_IMEI, "test")
    old_pending = store.create(VALID_IMEI, "test")
    fresh = store.create(VALID_IMEI, "test")
    for session in (old_delivered, old_pending, fresh):
        store.add_image(session, "front", 0, b"x" * 1000)
        store.finish(session.id, "graded", {}, grade="A")
    store.db.connection().execute(
        "UPDATE sessions SET created_at = created_at - 3 * 86400 WHERE id IN (?, ?)", (old_delivered.id, old_pending.id)
    )
    retention.add_guard(lambda conn: {old_pending.id})
    assert retention.sweep() == 1
    assert store.get(fresh.id) is not None
    assert store.get(old_delivered.id) is None
    assert store.get(old_pending.id) is not None
    assert len(store.images(old_pending.id)) == 1


def test_retention_quota_removes_oldest_delivered_first(store: SessionStore) -> None:
    retention = Retention(store, StorageConfig(quota_mb=64), EventBus("b"))
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


def test_retention_runs_component_sweepers_with_the_sweep_time(store: SessionStore) -> None:
    retention = Retention(store, StorageConfig(), EventBus("b"))
    seen: list[float] = []
    retention.add_sweeper(lambda now: seen.append(now) or 0)
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
    assert len(db._connections) <= 2
    db.close()


def test_retention_prunes_delivered_mqtt_rows_after_their_keep_time(tmp_path: Path) -> None:
    booth = Booth(load_config(write_config(tmp_path / "booth", tmp_path / "replay")))
    service = MqttService.for_booth(booth)
    with booth.db.transaction() as conn:
        for n in range(3):
            service.outbox.enqueue(conn, f"s{n}", "result", f"sessions/s{n}", {"n": n})
    delivered = [row.id for row in service.outbox.pending(10)][:2]
    service.outbox.mark_delivered(delivered)
    keep_s = booth.config.mqtt.outbox_keep_delivered_days * 86400
    booth.retention.sweep(now=time.time() + keep_s / 2)
    assert len(booth.db.connection().execute("SELECT id FROM mqtt_outbox").fetchall()) == 3
    booth.retention.sweep(now=time.time() + keep_s + 60)
    left = booth.db.connection().execute("SELECT session_id FROM mqtt_outbox").fetchall()
    assert [row[0] for row in left] == ["s2"]  # the undelivered row stays
    booth.close()


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
