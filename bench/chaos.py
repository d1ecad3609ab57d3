"""Chaos run of the booth, black-box: its own Mosquitto, cloud simulator and daemon on free loopback ports.

Scenarios: random SIGKILLs at every phase of a session (restarting the daemon each time), a broker +
cloud outage with a SIGKILL during the backlog flush, a full disk at every phase (small tmpfs when
mounting is permitted), a slow and a dropping cloud, a hostile-input corpus over MQTT and HTTP plus
schemathesis against the live OpenAPI, and 16 concurrent maximal uploads. Prints ONE table and exits
non-zero when an invariant fails.

    python bench/chaos.py            # reduced form, about 3 minutes on 2 cores
    python bench/chaos.py --full     # 100 sessions, >= 20 kills, 2-minute outage, 2,000 schemathesis cases

Every loop is bounded in count and time; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.unit_env import unit_environment, unit_memory_max_mb  # noqa: E402
from edge.statuses import FINAL  # noqa: E402
from tests.booth_support import DaemonProcess, free_port, render_booth_images, wait_for, write_config  # noqa: E402
from tests.cloudsim_support import imei  # noqa: E402
from tests.mosquitto_broker import Collector, MosquittoBroker  # noqa: E402

KEY = "chaos-key"
BOOTH = "test-booth"
PREFIX = f"vision-grader/{BOOTH}"
TERMINAL = FINAL  # review included: the session has ended, a technician decides its grade
RAN = FINAL - {"failed"}  # a session that ran to its end
PHASES = ("trigger", "capture", "grading", "overlays", "publish")
UNIT_MEMORY_MAX_MB = unit_memory_max_mb()
MAX_PIXELS = 64_000_000
FULL_DISK_TAG = "full disk: "
READ_TIMEOUT_S = 4.0  # the booth's cloud read timeout here (default 30 s): several timeouts fit in a window
SLOW_CLOUD_DELAY_S = 6.0  # the slow cloud answers process after this: longer than the read timeout
INSUFFICIENT_STORAGE = 507  # the contract's answer for a full disk: not counted as a server error
BUSY_RETRIES = 3  # an upload answered busy (503 + Retry-After) is sent again at most this often


@dataclass(frozen=True)
class Form:
    sessions: int = 12
    kills: int = 10
    outage_s: float = 10.0
    backlog: int = 6
    disk_delays_s: tuple[float, ...] = (0.0, 0.15)
    schemathesis_cases: int = 150
    uploads: int = 16
    slow_window_s: float = 15.0
    disk_wait_s: float = 10.0
    seed: int = 12


FULL = Form(
    sessions=100,
    kills=25,
    outage_s=120.0,
    backlog=15,
    disk_delays_s=(0.0, 0.05, 0.1, 0.2, 0.4, 0.8),
    schemathesis_cases=2000,
    slow_window_s=40.0,
    disk_wait_s=30.0,
)


@dataclass
class Report:
    """Everything the run measured; ``failures()`` names the invariants it broke."""

    storage: str = ""
    triggered: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    mqtt_duplicates: int = 0
    cloud_duplicates: int = 0
    cloud_process_sends_counted: int = 0
    kills: list[tuple[str, str]] = field(default_factory=list)  # (phase hit, integrity_check)
    orphan_files: list[str] = field(default_factory=list)
    orphan_rows: list[str] = field(default_factory=list)
    stale_overlays: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    busy_answers: int = 0
    peak_rss_mb: float = 0.0
    drain_s: float = 0.0
    outage_order_ok: bool = True
    backlog_messages: int = 0
    backlog_sessions: int = 0
    disk: list[dict[str, Any]] = field(default_factory=list)
    disk_uploads: dict[str, Any] = field(default_factory=dict)
    slow_cloud: dict[str, Any] = field(default_factory=dict)
    drop_cloud: dict[str, Any] = field(default_factory=dict)
    hostile: dict[str, Any] = field(default_factory=dict)
    schemathesis: dict[str, Any] = field(default_factory=dict)
    uploads: dict[str, Any] = field(default_factory=dict)
    trigger_wait: dict[str, Any] = field(default_factory=dict)
    step_errors: dict[str, str] = field(default_factory=dict)
    overlay_kill_session: str | None = None
    backlog_kill_mid_flush: bool = False
    backlog_unrecorded: int = 0
    elapsed_s: float = 0.0

    def invariants(self) -> list[tuple[str, str, bool]]:
        """(name, measured value, holds) for every invariant of issue 12's 'done when'."""
        kills = len(self.kills)
        bad_integrity = [k for k in self.kills if k[1] != "ok"]
        disk_wedged = [d for d in self.disk if not d["recovered"]]
        hostile_bad = [k for k, v in self.hostile.items() if not v["ok"]]
        return [
            ("every step completed", ", ".join(self.step_errors) or "yes", not self.step_errors),
            ("sessions lost", str(len(self.lost)), not self.lost),
            ("MQTT duplicates <= 1 per kill", f"{self.mqtt_duplicates} for {kills + 1} kills",
             self.mqtt_duplicates <= kills + 1),
            ("kill during backlog flush: messages", f"{self.backlog_messages} for {self.backlog_sessions} sessions; "
             f"received but not recorded at the kill {self.backlog_unrecorded}"
             + ("" if self.backlog_kill_mid_flush else " (kill after the flush)"),
             self.backlog_messages <= self.backlog_sessions + 1 and self.backlog_unrecorded <= 1),
            ("cloud duplicates only where counted",
             f"{self.cloud_duplicates} (counted resends {self.cloud_process_sends_counted})",
             self.cloud_duplicates <= self.cloud_process_sends_counted),
            ("integrity_check after every kill", f"{kills - len(bad_integrity)}/{kills} ok", not bad_integrity),
            ("orphan files", str(len(self.orphan_files)), not self.orphan_files),
            ("orphan rows", str(len(self.orphan_rows)), not self.orphan_rows),
            ("stale overlays", str(len(self.stale_overlays)), not self.stale_overlays),
            ("5xx answers", str(len(self.server_errors)), not self.server_errors),
            ("busy answers (503 + Retry-After), retried", str(self.busy_answers), True),
            (f"peak RSS < {UNIT_MEMORY_MAX_MB} MB", f"{self.peak_rss_mb:.0f} MB",
             self.peak_rss_mb < UNIT_MEMORY_MAX_MB),
            ("outage drained in order", f"{self.drain_s:.1f} s", self.outage_order_ok),
            (f"full disk recovers ({self.storage})", f"{len(self.disk) - len(disk_wedged)}/{len(self.disk)}",
             not disk_wedged),
            ("full disk uploads answer 507", str(self.disk_uploads.get("statuses", {})),
             bool(self.disk_uploads.get("ok"))),
            ("slow cloud: resends back off, copies counted", str(self.slow_cloud.get("summary", "")),
             bool(self.slow_cloud.get("ok"))),
            ("dropping cloud mirrors every session", str(self.drop_cloud.get("summary", "")),
             bool(self.drop_cloud.get("ok"))),
            ("hostile input handled", f"{len(self.hostile) - len(hostile_bad)}/{len(self.hostile)}"
             + (f" (bad: {', '.join(hostile_bad)})" if hostile_bad else ""), not hostile_bad),
            ("schemathesis cases", f"{self.schemathesis.get('cases', 0)}, failures "
             f"{self.schemathesis.get('failures', 0)}", bool(self.schemathesis.get("ok"))),
            ("trigger --wait when the daemon dies", str(self.trigger_wait.get("summary", "")),
             bool(self.trigger_wait.get("ok"))),
        ]

    def failures(self) -> list[str]:
        return [name for name, _, holds in self.invariants() if not holds]

    def table(self) -> str:
        rows = [
            ("sessions triggered", str(len(self.triggered)), True),
            ("kills by phase", ", ".join(f"{p} {n}" for p, n in sorted(Counter(k[0] for k in self.kills).items())),
             True),
            *self.invariants(),
            ("time to drain after outage", f"{self.drain_s:.1f} s", True),
            ("wall time", f"{self.elapsed_s:.0f} s", True),
        ]
        width = max(len(r[0]) for r in rows)
        value_width = min(60, max(len(r[1]) for r in rows))
        lines = [f"{'check'.ljust(width)}  {'value'.ljust(value_width)}  result", "-" * (width + value_width + 10)]
        lines += [f"{n.ljust(width)}  {v.ljust(value_width)}  {'ok' if ok else 'FAIL'}" for n, v, ok in rows]
        return "\n".join(lines)


# -- the parts: broker, cloud simulator, daemon ---------------------------------------------------------------


class CloudSimProcess:
    """`edge-grader cloud-sim` as a child process with its admin routes."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "cloud-sim.log"
        self.storage = folder / "cloud"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CloudSimProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "cloud-sim", "--port", str(self.port), "--key", KEY,
                 "--storage", str(self.storage)],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            )
        wait_for(lambda: self._try(lambda: self.stats() is not None), 60)
        return self

    def _try(self, probe: Callable[[], bool]) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return probe()
        return False

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = httpx.request(method, f"{self.base_url}/_sim/{path}", json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def stats(self) -> dict[str, Any]:
        return self.admin("GET", "stats")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


class RssWatch:
    """Samples VmHWM/VmRSS of the current daemon pid; keeps the peak across restarts."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> RssWatch:
        self._thread.start()
        return self

    def sample(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(("VmHWM:", "VmRSS:")):
                    self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Like wait_for, but answers the last (falsy) value instead of raising."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def ro_query(db: Path, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The spool's SQLite read-only (stdlib), as an outside observer."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


class Booth:
    """One daemon under test: its config, state folder, HTTP API and restarts."""

    def __init__(self, folder: Path, images: Path, broker_port: int | None, cloud_url: str | None,
                 rss: RssWatch, extra: str = "", cloud_extra: str = "", shots: int = 2, threads: int = 1) -> None:
        self.api_port = free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        mqtt_conf = (f'host = "127.0.0.1"\nport = {broker_port}\nreconnect_min_s = 1\nreconnect_max_s = 2'
                     if broker_port else "enabled = false")
        cloud_conf = (f'mode = "mirror"\nbase_url = "{cloud_url}"\napi_key = "{KEY}"\n{cloud_extra}'
                      if cloud_url else 'mode = "off"')
        self.config = write_config(folder, images, api_port=self.api_port, shots=shots, threads=threads,
                                   mqtt=mqtt_conf, cloud=cloud_conf, extra=extra)
        self.config.write_text(self.config.read_text().replace('keys = ["test-key"]', f'keys = ["{KEY}"]'))
        self.state = folder / "state"
        self.db = self.state / "spool.db"
        self.rss = rss
        self.daemon: DaemonProcess | None = None
        self.http = httpx.Client(base_url=self.base, timeout=60)
        self.server_errors: list[str] = []
        self.busy_answers = 0

    def start(self) -> float:
        """Start the daemon; seconds until /healthz answers."""
        started = time.monotonic()
        self.daemon = DaemonProcess(self.config, env=unit_environment()).start()
        assert self.daemon.proc is not None
        self.rss.pid = self.daemon.proc.pid
        wait_for(self.healthy, 120)
        return time.monotonic() - started

    def healthy(self) -> bool:
        assert self.daemon is not None and self.daemon.proc is not None
        if self.daemon.proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {self.daemon.proc.returncode}:\n{self.daemon.output()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return self.http.get("/healthz", timeout=5).status_code == 200
        return False

    def restart_if_dead(self) -> None:
        if self.daemon is not None and self.daemon.proc is not None and self.daemon.proc.poll() is not None:
            self.start()

    def kill(self) -> None:
        assert self.daemon is not None
        self.rss.sample()
        self.daemon.kill(signal.SIGKILL)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.http.request(method, path, **kwargs)
        self.judge(f"{method} {path}", answer)
        return answer

    def judge(self, what: str, answer: httpx.Response) -> None:
        """Count a busy answer apart; note any other 5xx but the full disk's 507."""
        if is_busy(answer):
            self.busy_answers += 1
        elif answer.status_code >= 500 and answer.status_code != INSUFFICIENT_STORAGE:
            self.server_errors.append(f"{what} -> {answer.status_code} {answer.text[:120]}")

    def trigger(self, imei_: str, request_id: str | None = None, timeout: float = 120) -> str:
        """POST /api/sessions, waiting while the booth is busy; the session id."""
        body = {"imei": imei_, "key": KEY, **({"request_id": request_id} if request_id else {})}

        def attempt() -> str | None:
            answer = self.request("POST", "/api/sessions", json=body)
            if answer.status_code == 202:
                return str(answer.json()["sessionId"])
            if answer.status_code in (409, 503):
                return None
            raise RuntimeError(f"trigger refused: {answer.status_code} {answer.text}")

        return wait_for(attempt, timeout, interval=0.1)

    def status(self, session_id: str) -> str | None:
        rows = ro_query(self.db, "SELECT status FROM sessions WHERE id = ?", (session_id,))
        return rows[0][0] if rows else None

    def wait_terminal(self, session_id: str, timeout: float = 120) -> str | None:
        """The session's final status, or its last status when it did not end in time."""
        status = poll(lambda: self.status(session_id) in TERMINAL, timeout)
        return self.status(session_id) if status else f"stuck:{self.status(session_id)}"

    def outbox_depths(self) -> tuple[int, int]:
        rows = dict(ro_query(self.db, "SELECT channel, COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY channel"))
        return int(rows.get("mqtt", 0)), int(rows.get("cloud", 0))


def is_busy(answer: httpx.Response) -> bool:
    """The booth saying busy in the contract's form: 503, Retry-After, an error body. A client retries it."""
    if answer.status_code != 503 or "retry-after" not in answer.headers:
        return False
    try:
        return "error" in answer.json()
    except ValueError:
        return False


# -- the checks on what is stored ------------------------------------------------------------------------------


def integrity(db: Path) -> str:
    rows = ro_query(db, "PRAGMA integrity_check")
    return ",".join(str(r[0]) for r in rows)


def spool_consistency(state: Path) -> tuple[list[str], list[str], list[str]]:
    """(files without a row, rows without a file, sessions with more overlays than originals)."""
    db = state / "spool.db"
    paths = {r[0] for r in ro_query(db, "SELECT path FROM images")}
    paths |= {r[0] for r in ro_query(db, "SELECT path FROM uploads")}
    root = state / "images"
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    stale = ro_query(
        db,
        "SELECT session_id FROM images GROUP BY session_id "
        "HAVING SUM(kind = 'overlay') > SUM(kind = 'original')",
    )
    return sorted(files - paths), sorted(paths - files), [r[0] for r in stale]


def persistent_broker() -> MosquittoBroker:
    """A test broker that keeps sessions and queued messages across a stop and start (outage tests)."""
    broker = MosquittoBroker()
    kept = f"persistence true\npersistence_location {broker.conf.parent}/\n"
    conf = broker.conf.read_text().replace("persistence false\n", kept)
    broker.conf.write_text(conf)
    return broker.start()


class DurableCollector(Collector):
    """A Collector with a persistent MQTT 5 session (QoS 1): it misses nothing while the broker is away."""

    def __init__(self, broker: MosquittoBroker, topic: str) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"chaos-observer-{os.getpid()}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.05, 0.2)

        def on_connect(client: mqtt.Client, *_: Any) -> None:
            client.subscribe(topic, qos=1)

        def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            with self._cond:
                self.messages.append((message.topic, message.payload, bool(message.retain)))
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=properties)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("chaos observer could not subscribe")


class Results:
    """MQTT results per session id, from a subscriber on the booth's whole prefix."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def arrivals(self) -> list[str]:
        with self.collector._cond:
            topics = [t for t, _, _ in self.collector.messages]
        start = f"{PREFIX}/sessions/"
        return [t[len(start):] for t in topics if t.startswith(start) and "/" not in t[len(start):]]

    def counts(self) -> Counter[str]:
        return Counter(self.arrivals())

    def have(self, sessions: list[str]) -> bool:
        counts = self.counts()
        return all(counts[s] for s in sessions)


# -- scenarios ----------------------------------------------------------------------------------------------


def overlay_rows(booth: Booth, session_id: str) -> int:
    query = "SELECT COUNT(*) FROM images WHERE session_id = ? AND kind = 'overlay'"
    return int(ro_query(booth.db, query, (session_id,))[0][0])


def phase_of(booth: Booth, session_id: str, results: Results) -> str:
    status = booth.status(session_id)
    if status in (None, "capturing") and not ro_query(
        booth.db, "SELECT 1 FROM images WHERE session_id = ?", (session_id,)
    ):
        return "trigger"
    if status in ("capturing", "captured"):
        return "capture"
    if status == "grading":
        return "overlays" if overlay_rows(booth, session_id) else "grading"
    return "publish" if not results.counts()[session_id] else "after publish"


def kill_at(booth: Booth, session_id: str, phase: str, results: Results) -> str:
    """SIGKILL the daemon once the session reaches ``phase`` (or as soon as it passed it)."""
    if phase != "trigger":
        wanted = {"capture": ("capturing", "captured"), "grading": ("grading",), "overlays": ("grading",),
                  "publish": TERMINAL}[phase]

        def reached() -> bool:
            status = booth.status(session_id)
            if phase == "overlays":  # overlays stored, the result not yet committed
                return status in TERMINAL or (status == "grading" and overlay_rows(booth, session_id) > 0)
            if phase == "capture":
                return status in wanted and bool(
                    ro_query(booth.db, "SELECT 1 FROM images WHERE session_id = ?", (session_id,)))
            return status in wanted or status in TERMINAL

        poll(reached, 30, interval=0.003)
    hit = phase_of(booth, session_id, results)
    booth.kill()
    return hit


def run_kills(booth: Booth, results: Results, form: Form, report: Report, rng: random.Random) -> None:
    kill_sessions = set(rng.sample(range(form.sessions), min(form.kills, form.sessions)))
    for n in range(form.sessions):
        session_id = booth.trigger(imei(1000 + n))
        report.triggered.append(session_id)
        if n in kill_sessions:
            phase = PHASES[len(report.kills) % len(PHASES)]
            hit = kill_at(booth, session_id, phase, results)
            report.kills.append((hit, integrity(booth.db)))
            booth.start()
        else:
            booth.wait_terminal(session_id)
    directed_overlay_kill(booth, results, report)


def directed_overlay_kill(booth: Booth, results: Results, report: Report, attempts: int = 6) -> None:
    """Kill between the stored overlays and the committed result, retried until a kill lands there."""
    for attempt in range(attempts):
        session_id = booth.trigger(imei(1500 + attempt))
        report.triggered.append(session_id)
        hit = kill_at(booth, session_id, "overlays", results)
        report.kills.append((hit, integrity(booth.db)))
        booth.start()
        if hit == "overlays":
            report.overlay_kill_session = session_id
            booth.wait_terminal(session_id)
            return


def run_outage(broker: MosquittoBroker, sim: CloudSimProcess, booth: Booth, results: Results, form: Form,
               report: Report) -> None:
    """Broker and cloud away; sessions queue; back, a SIGKILL right after the first result; drain."""
    broker.stop()
    sim.admin("POST", "refuse", {"seconds": form.outage_s})
    began = time.monotonic()
    backlog: list[str] = []
    for n in range(form.backlog):
        session_id = booth.trigger(imei(5000 + n))
        booth.wait_terminal(session_id)
        backlog.append(session_id)
    report.triggered += backlog
    time.sleep(max(0.0, form.outage_s - (time.monotonic() - began)))  # the outage lasts its full length
    before = len(results.arrivals())
    broker.start()
    poll(lambda: len(results.arrivals()) > before, 60, interval=0.002)
    booth.kill()
    report.kills.append(("backlog flush", integrity(booth.db)))
    judge_flush_kill(booth, results, backlog, report)
    restarted = time.monotonic()
    booth.start()
    poll(lambda: results.have(backlog) and booth.outbox_depths() == (0, 0), 300, interval=0.2)
    report.drain_s = time.monotonic() - restarted
    counts = results.counts()
    report.backlog_sessions = len(backlog)
    report.backlog_messages = sum(counts[s] for s in backlog)
    first_seen = list(dict.fromkeys(s for s in results.arrivals() if s in set(backlog)))
    report.outage_order_ok = first_seen == backlog


def judge_flush_kill(booth: Booth, results: Results, backlog: list[str], report: Report) -> None:
    """After a kill mid-flush: results the subscriber has that the dead booth had not recorded as delivered.

    Recorded as each PUBACK arrives, at most the one in flight can be such a result; recorded in a
    batch after the flush, all of them are (and all are sent again after the restart).
    """
    settled = -1
    while settled != len(results.arrivals()):  # what the broker had before the kill reaches the subscriber
        settled = len(results.arrivals())
        time.sleep(0.5)
    received = {s for s in backlog if results.counts()[s]}
    rows = ro_query(booth.db, "SELECT session_id FROM outbox WHERE channel = 'mqtt' AND kind = 'result'"
                              " AND state = 'pending'")
    undelivered = {s for (s,) in rows} & set(backlog)
    report.backlog_kill_mid_flush = bool(received) and bool(undelivered)
    report.backlog_unrecorded = len(received & undelivered)


def fill_disk(mount: Path) -> Path:
    """Write a filler file until the file system is full."""
    filler = mount / f"filler-{time.monotonic_ns()}"
    chunk = b"\0" * (1 << 20)
    with contextlib.suppress(OSError), filler.open("wb") as out:
        for _ in range(100_000):
            out.write(chunk)
            out.flush()
    with contextlib.suppress(OSError), filler.open("ab") as out:
        for _ in range(1 << 20):  # the last partial MiB, 1 KiB at a time
            out.write(b"\0" * 1024)
            out.flush()
    return filler


@contextlib.contextmanager
def small_disk(folder: Path, size_mb: int) -> Iterator[tuple[Path, str]]:
    """A small tmpfs at ``folder`` (root only); else the plain folder and the daemon's own quota."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                             capture_output=True, check=False).returncode == 0
    try:
        yield folder, (f"tmpfs {size_mb} MB" if mounted else "not run: mounting a tmpfs is not permitted")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def disk_booth(root: Path, mount: Path, images: Path, rss: RssWatch) -> Booth:
    folder = root / f"disk-{time.monotonic_ns()}"
    folder.mkdir()
    state = mount / f"state-{time.monotonic_ns()}"
    state.mkdir()
    (folder / "state").symlink_to(state)
    return Booth(folder, images, None, None, rss, extra="[storage]\nmin_free_mb = 16\nemergency_free_mb = 20\n")


def run_full_disk(root: Path, images: Path, rss: RssWatch, form: Form, report: Report) -> None:
    with small_disk(root / "small-disk", 64) as (mount, kind):
        report.storage = kind
        if not kind.startswith("tmpfs"):
            return  # never fill a real disk: the full-disk rows say "not run"
        for n, delay in enumerate(form.disk_delays_s):
            booth = disk_booth(root, mount, images, rss)
            booth.start()
            try:
                report.disk.append(one_full_disk_session(booth, mount, delay, 7000 + 10 * n, form.disk_wait_s))
            finally:
                booth.kill()
                report.server_errors += [FULL_DISK_TAG + e for e in booth.server_errors]
                shutil.rmtree(booth.state.resolve(), ignore_errors=True)
        booth = disk_booth(root, mount, images, rss)
        booth.start()
        try:
            report.disk_uploads = uploads_until_full(booth)
        finally:
            booth.kill()
            report.server_errors += [FULL_DISK_TAG + e for e in booth.server_errors]


def one_full_disk_session(booth: Booth, mount: Path, delay: float, series: int, wait_s: float) -> dict[str, Any]:
    """Trigger, fill the disk ``delay`` s later, free it: the session must end and the next must run."""
    session_id = booth.trigger(imei(series))
    time.sleep(delay)
    filler = fill_disk(mount)
    first = booth.wait_terminal(session_id, wait_s)
    health = booth.request("GET", "/healthz").json()
    filler.unlink()
    answer = booth.request("POST", "/api/sessions", json={"imei": imei(series + 1), "key": KEY})
    second = booth.wait_terminal(answer.json()["sessionId"], wait_s) if answer.status_code == 202 else None
    return {
        "delay_s": delay, "first": first, "health": health.get("status"),
        "activity": health.get("components", {}).get("activity"),
        "next_trigger": answer.status_code, "next": second,
        "recovered": first in TERMINAL and second in RAN,
    }


def uploads_until_full(booth: Booth, limit: int = 200) -> dict[str, Any]:
    """Upload ~1 MB photos until the booth refuses; a full disk must be a 507, never a 500."""
    photo = big_jpeg()
    statuses: Counter[int] = Counter()
    for n in range(limit):
        try:
            status = booth.request("POST", "/api/upload", files={"image": (f"p{n}.jpg", photo, "image/jpeg")},
                                   data={"section": "front"}).status_code
        except httpx.TransportError:
            status = 0  # the connection closed without an answer
        statuses[status] += 1
        if status != 200 and statuses[status] >= 3:
            break
    refusals = {s for s in statuses if s != 200}
    return {"statuses": dict(statuses), "ok": bool(refusals) and refusals <= {507}}


def big_jpeg(width: int = 2000, height: int = 1500) -> bytes:
    import cv2
    import numpy as np

    noise = np.random.default_rng(7).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def process_send_times(sim: CloudSimProcess, window_s: float) -> list[float]:
    """Times (s from now) at which the simulator counted a new process request, over ``window_s``."""
    times: list[float] = []
    start = time.monotonic()
    seen = sim.stats()["requests"].get("process", 0)
    while time.monotonic() - start < window_s:
        now = sim.stats()["requests"].get("process", 0)
        times += [round(time.monotonic() - start, 1)] * (now - seen)
        seen = now
        time.sleep(0.1)
    return times


def run_slow_cloud(sim: CloudSimProcess, booth: Booth, form: Form, report: Report) -> None:
    """process answers after longer than the booth's read timeout, for a whole window: the resends must
    back off (each pause after a timeout at least the previous one) and every cloud copy be counted."""
    sim.admin("POST", "faults", {"kind": "slow", "delay_s": SLOW_CLOUD_DELAY_S, "endpoint": "process", "count": None})
    the_imei = imei(8000)
    session_id = booth.trigger(the_imei)
    report.triggered.append(session_id)
    booth.wait_terminal(session_id)
    sends = process_send_times(sim, form.slow_window_s)
    sim.admin("DELETE", "faults")
    pauses = [round(b - a - READ_TIMEOUT_S, 1) for a, b in itertools.pairwise(sends)]
    backing_off = all(b >= a - 0.2 for a, b in itertools.pairwise(pauses))  # 0.2 s: the sampling step
    poll(lambda: sim.stats().get("sessions_by_imei", {}).get(the_imei, 0) >= len(sends), SLOW_CLOUD_DELAY_S + 5)
    copies = sim.stats().get("sessions_by_imei", {}).get(the_imei, 0)
    counted = ro_query(booth.db, "SELECT sends FROM outbox WHERE channel = 'cloud' AND session_id = ?", (session_id,))
    counted_sends = int(counted[0][0]) if counted else 0
    report.slow_cloud = {
        "sends": sends, "pauses": pauses, "copies": copies, "counted_sends": counted_sends,
        "summary": f"{len(sends)} process calls in {form.slow_window_s:g} s (read timeout {READ_TIMEOUT_S:g} s), "
                   f"pauses {pauses} s; cloud copies {copies}, sends counted {counted_sends}",
        "ok": backing_off and copies <= counted_sends,
    }


def run_drop_cloud(sim: CloudSimProcess, booth: Booth, report: Report) -> None:
    sim.admin("POST", "faults", {"kind": "drop", "endpoint": "upload", "count": 2})
    sim.admin("POST", "faults", {"kind": "drop", "endpoint": "process", "count": 1})
    the_imei = imei(8100)
    session_id = booth.trigger(the_imei)
    report.triggered.append(session_id)
    booth.wait_terminal(session_id)
    mirrored = poll(lambda: ro_query(booth.db, "SELECT state FROM outbox WHERE channel = 'cloud' AND session_id = ?",
                                     (session_id,)) == [("done",)], 120, interval=0.2)
    copies = sim.stats().get("sessions_by_imei", {}).get(the_imei, 0)
    report.drop_cloud = {"summary": f"mirrored={bool(mirrored)}, cloud copies {copies}", "ok": bool(mirrored)}


# -- hostile input --------------------------------------------------------------------------------------------


class Commander:
    """Publishes to <prefix>/cmd/trigger and reads the answers by request_id."""

    def __init__(self, broker: MosquittoBroker, collector: Collector) -> None:
        self.collector = collector
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, body: bytes, retain: bool = False) -> None:
        self.client.publish(f"{PREFIX}/cmd/trigger", body, qos=1, retain=retain).wait_for_publish(10)

    def answers(self, request_id: Any) -> list[dict[str, Any]]:
        found = []
        for payload in self.collector.on(f"{PREFIX}/cmd/trigger/response"):
            with contextlib.suppress(ValueError):
                answer = json.loads(payload)
                if isinstance(answer, dict) and answer.get("request_id") == request_id:
                    found.append(answer)
        return found

    def ask(self, body: bytes, request_id: Any, timeout: float = 15, retain: bool = False) -> dict[str, Any] | None:
        before = len(self.answers(request_id))
        self.send(body, retain)
        ok = poll(lambda: len(self.answers(request_id)) > before, timeout, interval=0.05)
        return self.answers(request_id)[-1] if ok else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sessions_with_request_id(booth: Booth, request_id: str) -> list[str]:
    return [r[0] for r in ro_query(booth.db, "SELECT id FROM sessions WHERE request_id = ?", (request_id,))]


def settle(booth: Booth, session_ids: list[str]) -> None:
    for session_id in session_ids:
        booth.wait_terminal(session_id)


def ask_while_busy(commander: Commander, body: bytes, request_id: str, attempts: int = 50) -> dict[str, Any] | None:
    """Ask again while the booth answers busy (it frees itself just after a session's result is stored)."""
    answer = None
    for _ in range(attempts):
        answer = commander.ask(body, request_id)
        if not answer or answer.get("code") != "busy":
            return answer
        time.sleep(0.2)
    return answer


def invalid_request(answer: dict[str, Any] | None) -> bool:
    return bool(answer and "error" in answer and answer.get("code") == "invalid_request")


def mqtt_hostile(booth: Booth, commander: Commander) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    # A retained trigger would start a new session on every reconnect, so it never runs: the booth's
    # MQTT 5 subscription keeps the flag as published, so the live copy is refused like the one the
    # broker hands over when the booth connects again.
    commander.ask(json.dumps({"imei": imei(9000), "request_id": "retained-1"}).encode(), "retained-1", retain=True)
    live = any(a.get("code") == "retained" for a in commander.answers("retained-1"))
    booth.stop()
    booth.start()
    refused = poll(lambda: sum(a.get("code") == "retained" for a in commander.answers("retained-1")) >= 2, 15,
                   interval=0.1)
    commander.send(b"", retain=True)  # clear the retained message
    retained = sessions_with_request_id(booth, "retained-1")
    out["mqtt retained trigger"] = {"sessions": len(retained), "refused live": live,
                                    "refused on reconnect": bool(refused),
                                    "ok": len(retained) == 0 and live and bool(refused)}
    # The same request_id twice, the booth idle both times: one session.
    for _ in range(2):
        ask_while_busy(commander, json.dumps({"imei": imei(9010), "request_id": "dup-mqtt"}).encode(), "dup-mqtt")
        settle(booth, sessions_with_request_id(booth, "dup-mqtt"))
    dup = sessions_with_request_id(booth, "dup-mqtt")
    out["mqtt duplicate request_id"] = {"sessions": len(dup), "ok": len(dup) == 1}
    # An unknown field is refused, as HTTP refuses it (422).
    answer = commander.ask(json.dumps({"imei": imei(9020), "request_id": "unknown", "bogus": 1}).encode(), "unknown")
    settle(booth, sessions_with_request_id(booth, "unknown"))
    out["mqtt unknown field"] = {"answer": answer, "ok": invalid_request(answer)}
    # JSON nested 2,000 deep (under 4 KB): a clear error answer. A body the booth refuses to parse gives it
    # no request_id to copy back, so the answer carries request_id null.
    deep = b'{"request_id": "deep", "imei": "' + imei(9030).encode() + b'", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    answer = commander.ask(deep, None)
    deep_sessions = sessions_with_request_id(booth, "deep")
    settle(booth, deep_sessions)
    out["mqtt JSON nested 2000 deep"] = {"bytes": len(deep), "answer": answer,
                                         "ok": invalid_request(answer) and not deep_sessions}
    # Bad IMEIs: each refused with the code invalid_imei, nothing stored.
    bad = ["490154203237519", "12345", "4901542032375181", "49015420323751a", "", " 490154203237518"]
    codes = [(commander.ask(json.dumps({"imei": b, "request_id": f"bad-{n}"}).encode(), f"bad-{n}") or {}).get("code")
             for n, b in enumerate(bad)]
    out["mqtt bad IMEIs"] = {"codes": codes, "ok": all(c == "invalid_imei" for c in codes)}
    return out


def http_hostile(booth: Booth) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for _ in range(2):
        booth.trigger(imei(9100), request_id="dup-http")
        settle(booth, sessions_with_request_id(booth, "dup-http"))
    dup = sessions_with_request_id(booth, "dup-http")
    out["http duplicate request_id"] = {"sessions": len(dup), "ok": len(dup) == 1}
    deep = '{"imei": "' + imei(9110) + '", "key": "' + KEY + '", "x": ' + "[" * 2000 + "]" * 2000 + "}"
    cases = {
        "http JSON nested 2000 deep": ("POST", "/api/sessions", {"content": deep,
                                                                  "headers": {"content-type": "application/json"}},
                                       {400, 413, 422}),
        "http bad IMEI": ("POST", "/api/sessions", {"json": {"imei": "490154203237519", "key": KEY}}, {400}),
        "http unknown field": ("POST", "/api/sessions", {"json": {"imei": imei(9120), "key": KEY, "bogus": 1}}, {422}),
        "http non-image upload": ("POST", "/api/upload", {"files": {"image": ("a.jpg", b"not an image" * 100,
                                                                              "image/jpeg")},
                                                           "data": {"section": "front"}}, {400}),
        "http process without key (401)": ("POST", "/api/process",
                                           {"json": {"imei": imei(9130), "images": [{"url": "x", "section": "front"}]}},
                                           {401}),
    }
    for name, (method, path, kwargs, wanted) in cases.items():
        answer = booth.request(method, path, **kwargs)
        body_ok = answer.headers.get("content-type", "").startswith("application/json") and "error" in answer.json()
        out[name] = {"status": answer.status_code, "ok": answer.status_code in wanted and body_ok}
    out["http oversize JSON"] = oversize(booth, "/api/process", "application/json",
                                         b'{"key": "' + b"k" * 2_000_000 + b'"}')
    boundary = b"chaosboundary"
    multipart = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="section"\r\n\r\nfront\r\n--' + boundary
                 + b'\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
                 + b"Content-Type: image/jpeg\r\n\r\n\xff\xd8" + b"\0" * 27_000_000 + b"\r\n--" + boundary + b"--\r\n")
    out["http oversize upload"] = oversize(booth, "/api/upload", "multipart/form-data; boundary=chaosboundary",
                                           multipart)
    settle(booth, [r[0] for r in ro_query(booth.db, "SELECT id FROM sessions WHERE status NOT IN "
                                                    "('graded', 'retake', 'failed')")])
    return out


def oversize(booth: Booth, path: str, content_type: str, body: bytes) -> dict[str, Any]:
    """POST a body over the limit on a raw socket: the booth may answer 413 before it has read it all."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    answer = b""
    with socket.create_connection(("127.0.0.1", booth.api_port), timeout=60) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(head)
            for start in range(0, len(body), 1 << 16):
                sock.sendall(body[start:start + (1 << 16)])
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    if status >= 500:
        booth.server_errors.append(f"POST {path} (oversize) -> {status}")
    return {"status": status, "ok": status == 413 and b'"error"' in answer}


def run_schemathesis(base: str, cases: int, run_seed: int) -> dict[str, Any]:
    """Schemathesis against the daemon's live OpenAPI, positive and negative; counts cases and failures.

    Each round has a seed of its own: the run can be repeated, and an operation that has no negative
    case to give (hypothesis raises Unsatisfiable) is not reported as a failure with a seed to rerun."""
    import schemathesis
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    per_operation = max(1, cases // (2 * len(operations)) + 1)
    run: list[str] = []
    failures: list[str] = []
    deadline = time.monotonic() + max(120.0, cases * 0.5)
    rounds = [(m, o) for _ in range(10) for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) for o in operations]
    # round after round until enough cases ran (hypothesis may dedupe some)
    for n, (mode, operation) in enumerate(rounds):
        if len(run) >= cases or time.monotonic() > deadline:
            break

        @seed(run_seed * 1000 + n)
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=per_operation, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case: schemathesis.Case) -> None:
            run.append(case.path)
            try:
                case.call_and_validate(base_url=base, checks=[not_a_server_error], timeout=60)
            except Exception as exc:
                failures.append(f"{case.method} {case.path}: {str(exc)[:160]}")

        with contextlib.suppress(Unsatisfiable):
            check()
    return {"cases": len(run), "failures": len(failures), "examples": failures[:3],
            "ok": not failures and len(run) >= cases * 0.9}


# -- memory -----------------------------------------------------------------------------------------------


def maximal_png(width: int = 8000, height: int = MAX_PIXELS // 8000 - 1) -> bytes:
    """A 16-bit RGBA PNG just under the pixel budget, streamed row by row (never held decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([16, 6, 0, 0, 0])
    compressor = zlib.compressobj(9)
    row = b"\0" + bytes(range(256)) * (width * 8 // 256) + b"\0" * (width * 8 % 256)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def run_uploads(booth: Booth, count: int, report: Report) -> None:
    png = maximal_png()
    statuses: list[int] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        with httpx.Client(base_url=booth.base, timeout=300) as client:
            for _ in range(BUSY_RETRIES + 1):
                answer = client.post("/api/upload", files={"image": (f"max-{n}.png", png, "image/png")},
                                     data={"section": "front"})
                with lock:
                    booth.judge("POST /api/upload (max PNG)", answer)
                if not is_busy(answer):
                    break
                time.sleep(float(answer.headers["retry-after"]))  # the wait the booth asks for
        with lock:
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    before = booth.rss.peak_mb
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    booth.rss.sample()
    report.uploads = {"count": count, "png_bytes": len(png), "statuses": dict(Counter(statuses)),
                      "peak_rss_mb": booth.rss.peak_mb, "peak_before_mb": before}


def run_trigger_wait(root: Path, images: Path, rss: RssWatch, report: Report) -> None:
    """`edge-grader trigger --wait` while the daemon dies: no traceback, the session id printed."""
    blocking = root / "blocking-images"
    shutil.copytree(images, blocking)
    fronts = sorted((blocking / "front").iterdir())
    for extra in fronts[1:]:
        extra.unlink()
    os.mkfifo(blocking / "front" / "zz-blocking.jpg")  # the second front shot waits here forever
    booth = Booth(root / "trigger-wait", blocking, None, None, rss, shots=2)
    booth.start()
    try:
        assert booth.daemon is not None
        cli = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "trigger", "--imei", imei(9500), "--wait", "--config",
             str(booth.config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        session = wait_for(lambda: ro_query(booth.db, "SELECT id FROM sessions"), 60)[0][0]
        poll(lambda: ro_query(booth.db, "SELECT 1 FROM images"), 30)
        booth.kill()
        out, err = cli.communicate(timeout=120)
    finally:
        booth.stop()
    ok = "Traceback" not in err and session in out + err and cli.returncode != 0
    report.trigger_wait = {"returncode": cli.returncode, "stderr": err[-400:], "stdout": out[-200:],
                           "summary": f"rc={cli.returncode}, traceback={'Traceback' in err}, "
                                      f"session id shown={session in out + err}", "ok": ok}


# -- the run ----------------------------------------------------------------------------------------------


def finish_accounting(booth: Booth, sim: CloudSimProcess, results: Results, report: Report) -> None:
    """Everything drained: lost sessions, duplicates, orphans."""
    sessions = [r[0] for r in ro_query(booth.db, "SELECT id FROM sessions")]
    poll(lambda: results.have(sessions) and booth.outbox_depths() == (0, 0), 300, interval=0.2)
    counts = results.counts()
    report.lost = [s for s in report.triggered if not counts[s]]
    report.mqtt_duplicates = sum(max(0, counts[s] - 1) for s in sessions)
    copies = sim.stats().get("sessions_by_imei", {})
    # Two booth sessions of one IMEI are two cloud sessions.
    mirrored = Counter(dict(ro_query(booth.db, "SELECT s.imei, COUNT(*) FROM outbox o JOIN sessions s "
                                               "ON s.id = o.session_id WHERE o.channel = 'cloud' AND o.state = 'done' "
                                               "GROUP BY s.imei")))
    report.cloud_duplicates = sum(max(0, n - mirrored[i]) for i, n in copies.items())
    sends = ro_query(booth.db, "SELECT COALESCE(SUM(MAX(sends - 1, 0)), 0) FROM outbox WHERE channel = 'cloud'")
    report.cloud_process_sends_counted = int(sends[0][0])
    files, rows, stale = spool_consistency(booth.state)
    report.orphan_files, report.orphan_rows, report.stale_overlays = files, rows, stale


def run(form: Form, root: Path, log: Callable[[str], None] = print, only: set[str] | None = None) -> Report:
    report = Report()
    started = time.monotonic()
    rng = random.Random(form.seed)
    images = render_booth_images(root / "replay")
    rss = RssWatch().start()
    broker = persistent_broker()
    sim = CloudSimProcess(root).start()
    collector = DurableCollector(broker, f"{PREFIX}/#")
    results = Results(collector)
    # A short read timeout and backoff so timeouts repeat, and the outage drains, within the run.
    cloud_extra = f"read_timeout_s = {READ_TIMEOUT_S}\nconnect_timeout_s = 2\nbackoff_base_s = 0.5\nbackoff_cap_s = 4\n"
    booth = Booth(root / "booth", images, broker.port, sim.base_url, rss, cloud_extra=cloud_extra)
    commander = Commander(broker, collector)
    try:
        booth.start()
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("SIGKILLs", lambda: run_kills(booth, results, form, report, rng)),
            ("outage", lambda: run_outage(broker, sim, booth, results, form, report)),
            ("slow cloud", lambda: run_slow_cloud(sim, booth, form, report)),
            ("dropping cloud", lambda: run_drop_cloud(sim, booth, report)),
            ("hostile MQTT", lambda: report.hostile.update(mqtt_hostile(booth, commander))),
            ("hostile HTTP", lambda: report.hostile.update(http_hostile(booth))),
            ("schemathesis", lambda: report.schemathesis.update(
                run_schemathesis(booth.base, form.schemathesis_cases, form.seed))),
            ("uploads", lambda: run_uploads(booth, form.uploads, report)),
            ("accounting", lambda: finish_accounting(booth, sim, results, report)),
            ("full disk", lambda: run_full_disk(root, images, rss, form, report)),
            ("trigger --wait", lambda: run_trigger_wait(root, images, rss, report)),
        ]
        for name, step in steps:
            if only and name not in only:
                continue
            began = time.monotonic()
            try:
                step()
            except Exception as exc:  # one broken step must not hide the others' figures
                report.step_errors[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
                booth.restart_if_dead()
            log(f"[chaos] {name}: {time.monotonic() - began:.0f} s")
    finally:
        report.server_errors += booth.server_errors
        report.busy_answers = booth.busy_answers
        rss.sample()
        report.peak_rss_mb = rss.peak_mb
        rss.stop()
        commander.close()
        collector.close()
        booth.stop()
        sim.stop()
        broker.close()
        report.elapsed_s = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full form (100 sessions, 2-minute outage, ...)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, spool) and say where")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--only", help="comma-separated steps to run (e.g. 'hostile HTTP,uploads'); default all")
    args = parser.parse_args(argv)
    form = FULL if args.full else Form()
    root = Path(tempfile.mkdtemp(prefix="edge-chaos-"))
    try:
        report = run(form, root, only=set(args.only.split(",")) if args.only else None)
    finally:
        if args.keep:
            print(f"[chaos] kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nchaos run ({'full' if args.full else 'reduced'} form), storage: {report.storage}\n")
    print(report.table())
    for name, error in report.step_errors.items():
        print(f"step {name!r} broke off: {error}")
    if args.json:
        args.json.write_text(json.dumps(report.__dict__, indent=2, default=str))
    failures = report.failures()
    if failures:
        print(f"\n{len(failures)} invariant(s) failed: {'; '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
