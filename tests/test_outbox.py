"""The one outbox on a real SQLite file: order, retries, Retry-After, the bound, the migration."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config.cloud import CloudConfig
from edge.config.mqtt import MqttConfig
from edge.events import EventBus
from edge.mirror import CloudQueue, cloud_channel
from edge.publish import mqtt_channel
from edge.spool.db import Database
from edge.spool.outbox import Outbox
from edge.spool.sessions import SessionStore
from tests.booth_support import VALID_IMEI
from tests.clock_support import SteppedClock


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Outbox, SessionStore, list[dict]]]:
    db = Database(tmp_path / "spool.db")
    heard: list[dict] = []
    events = EventBus("b")
    events.subscribe(heard.append)
    mqtt = MqttConfig(outbox_max_rows=3, retry_base_s=10, retry_cap_s=40)
    cloud = CloudConfig(backoff_base_s=10, backoff_cap_s=40, retry_after_max_s=100, outbox_max_sessions=3)
    outbox = Outbox(db, events, [mqtt_channel(mqtt, threading.Event()), cloud_channel(cloud, threading.Event())])
    store = SessionStore(db, tmp_path / "images")
    yield outbox, store, heard
    db.close()


def fill(outbox: Outbox, store: SessionStore, channel: str, count: int) -> list[str]:
    ids = [store.create(VALID_IMEI, "test").id for _ in range(count)]
    with outbox.db.transaction() as conn:
        for sid in ids:
            outbox.enqueue(conn, channel, sid, "result", {"id": sid}, topic=f"sessions/{sid}")
    return ids


def test_an_ordered_channel_lets_nothing_overtake_a_row_waiting_for_its_retry(
    parts: tuple[Outbox, SessionStore, list[dict]],
) -> None:
    outbox, store, _ = parts
    ids = fill(outbox, store, "mqtt", 3)
    first = outbox.claim_due("mqtt", 3)
    assert [row.session_id for row in first] == ids
    wait = outbox.retry(first[0].id, None, "broker refused")
    assert 10 * 0.5 <= wait <= 10
    assert outbox.claim_due("mqtt", 3) == []  # the refused row keeps its place; the rest wait behind it
    outbox.ack([first[1].id])
    assert outbox.depth("mqtt") == 2


def test_an_unordered_channel_goes_on_past_a_failing_row(parts: tuple[Outbox, SessionStore, list[dict]]) -> None:
    outbox, store, _ = parts
    ids = fill(outbox, store, "cloud", 3)
    first = outbox.claim_due("cloud", 1)[0]
    outbox.retry(first.id, 500, "server error")
    assert [row.session_id for row in outbox.claim_due("cloud", 3)] == ids[1:]
    # Rows someone waits for come first.
    assert [row.session_id for row in outbox.claim_due("cloud", 1, first=frozenset({ids[2]}))] == [ids[2]]


def test_retry_counts_attempts_backs_off_and_honours_retry_after(
    parts: tuple[Outbox, SessionStore, list[dict]],
) -> None:
    outbox, store, _ = parts
    fill(outbox, store, "cloud", 1)
    row = outbox.claim_due("cloud", 1)[0]
    delays = []
    for _ in range(4):
        delays.append(outbox.retry(row.id, 500, "server error"))
    # Equal jitter: between half and all of 10, 20, 40, then the cap of 40.
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20 and 20 <= delays[2] <= 40 and 20 <= delays[3] <= 40
    assert outbox.claim_due("cloud", 1) == []
    # Not this row's fault: not counted, but the server's Retry-After holds it (up to the cap).
    later = outbox.retry(row.id, 429, "slow down", charge=False, retry_after_s=1000)
    assert 100 <= later <= 110
    with outbox.db.transaction() as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = 0")
    assert outbox.claim_due("cloud", 1)[0].attempts == 4


def test_rows_waiting_when_the_clock_is_set_back_a_day_are_due_at_once_in_order(tmp_path: Path) -> None:
    clock = SteppedClock()
    db = Database(tmp_path / "spool.db")
    channels = [
        mqtt_channel(MqttConfig(retry_base_s=10, retry_cap_s=40), threading.Event()),
        cloud_channel(CloudConfig(backoff_base_s=10, backoff_cap_s=40, retry_after_max_s=100), threading.Event()),
    ]
    outbox = Outbox(db, EventBus("b"), channels, clock=clock)
    store = SessionStore(db, tmp_path / "images")
    mqtt_ids = fill(outbox, store, "mqtt", 2)
    cloud_ids = fill(outbox, store, "cloud", 2)
    head = outbox.claim_due("mqtt", 2)[0]
    outbox.retry(head.id, None, "broker refused")
    cloud = outbox.claim_due("cloud", 2)
    outbox.retry(cloud[0].id, 500, "server error")
    outbox.retry(cloud[1].id, 429, "slow down", charge=False, retry_after_s=100)
    assert outbox.claim_due("mqtt", 2) == [] and outbox.claim_due("cloud", 2) == []

    clock.step(-86_400)
    assert outbox.seconds_to_next_due("cloud") == 0.0  # what the mirror waits on before it claims
    mqtt_ids += fill(outbox, store, "mqtt", 1)
    assert [row.session_id for row in outbox.claim_due("mqtt", 5)] == mqtt_ids
    assert [row.session_id for row in outbox.claim_due("cloud", 5)] == cloud_ids
    assert outbox.seconds_to_next_due("mqtt") == 0.0
    # From the new time on, a failure backs off as before: the second attempt 10-20 s.
    wait = outbox.retry(head.id, None, "broker refused")
    assert 10 <= wait <= 20
    assert outbox.claim_due("mqtt", 5) == []
    clock.step(wait)
    assert [row.session_id for row in outbox.claim_due("mqtt", 5)] == mqtt_ids
    db.close()


@pytest.mark.parametrize("policy", ["drop-oldest", "drop-newest"])
def test_the_bound_has_one_policy_and_one_event_shape_for_every_channel(tmp_path: Path, policy: str) -> None:
    db = Database(tmp_path / "spool.db")
    heard: list[dict] = []
    events = EventBus("b")
    events.subscribe(heard.append)
    channels = [
        mqtt_channel(MqttConfig(outbox_max_rows=2, outbox_full_policy=policy), threading.Event()),
        cloud_channel(CloudConfig(outbox_max_sessions=2, outbox_full_policy=policy), threading.Event()),
    ]
    outbox = Outbox(db, events, channels)
    store = SessionStore(db, tmp_path / "images")
    for channel in ("mqtt", "cloud"):
        ids = fill(outbox, store, channel, 3)
        kept = [row.session_id for row in outbox.claim_due(channel, 10)]
        assert kept == (ids[1:] if policy == "drop-oldest" else ids[:2])
        dropped = ids[0] if policy == "drop-oldest" else ids[2]
        assert heard[-1] == {
            "type": "outbox_full",
            "booth_id": "b",
            "time": heard[-1]["time"],
            "outbox": channel,
            "policy": policy,
            "limit": 2,
            "dropped_session_ids": [dropped],
        }
        assert outbox.counts(channel) == {"pending": 2, "dropped": 1}
    db.close()


OLD_SCHEMA = [
    "CREATE TABLE mqtt_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, kind TEXT NOT NULL,"
    " topic TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " delivered_at REAL)",
    "CREATE TABLE cloud_sessions (seq INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL UNIQUE"
    " REFERENCES sessions (id) ON DELETE CASCADE, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " process_sends INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, last_failure_at REAL,"
    " last_status INTEGER, last_error TEXT, key_fingerprint TEXT, enqueued_at REAL NOT NULL, finished_at REAL)",
    "CREATE TABLE cloud_images (image_id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES"
    " cloud_sessions (session_id) ON DELETE CASCADE, section TEXT NOT NULL, path TEXT NOT NULL,"
    " sha256 TEXT NOT NULL, sends INTEGER NOT NULL DEFAULT 0, upload_json TEXT, uploaded_at REAL)",
]


def test_rows_queued_by_the_old_outboxes_move_over_in_order(tmp_path: Path) -> None:
    db = Database(tmp_path / "spool.db")
    store = SessionStore(db, tmp_path / "images")
    ids = [store.create(VALID_IMEI, "test").id for _ in range(3)]
    db.migrate("mqtt_outbox", (OLD_SCHEMA[0],))
    db.migrate("cloud_outbox", (OLD_SCHEMA[1:],))
    with db.transaction() as conn:
        for n, sid in enumerate(ids):
            conn.execute(
                "INSERT INTO mqtt_outbox (session_id, kind, topic, payload, created_at, delivered_at)"
                " VALUES (?, 'result', ?, '{}', ?, ?)",
                (sid, f"sessions/{sid}", n, 5.0 if n == 0 else None),
            )
        conn.execute(
            "INSERT INTO cloud_sessions (session_id, state, attempts, process_sends, next_attempt_at, enqueued_at)"
            " VALUES (?, 'pending', 2, 1, 0, 0)",
            (ids[1],),
        )
        conn.execute(
            "INSERT INTO cloud_images (image_id, session_id, section, path, sha256, sends, upload_json)"
            " VALUES (7, ?, 'front', 'p', 'h', 1, NULL)",
            (ids[1],),
        )
    channels = [mqtt_channel(MqttConfig(), threading.Event()), cloud_channel(CloudConfig(), threading.Event())]
    outbox = Outbox(db, EventBus("b"), channels)
    queue = CloudQueue(db, outbox, enabled=True)
    assert [row.session_id for row in outbox.claim_due("mqtt", 10)] == ids[1:]
    assert outbox.counts("mqtt") == {"done": 1, "pending": 2}
    job = queue.next_job()
    assert job is not None and job.session_id == ids[1] and job.attempts == 2
    assert [(image.image_id, image.sends) for image in job.images] == [(7, 1)]
    assert queue.sends(ids[1]) == {"uploads": 1, "process": 1}
    tables = {row[0] for row in db.connection().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not tables & {"mqtt_outbox", "cloud_sessions", "cloud_images"}
    db.close()
