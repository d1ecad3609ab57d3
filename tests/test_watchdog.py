"""The watchdog sees every worker: kill each thread in turn, the pings stop and /healthz names it.

The whole daemon runs in this process (real broker, real cloud simulator, real API server). A
worker is killed the way a crash kills a thread: an exception it does not catch, raised inside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge.cloudsim import CloudSim
from edge.config.load import load_config
from edge.daemon.notify import Notifier
from edge.daemon.run import watchdog_tick
from edge.daemon.wiring import Daemon, build
from edge.worker import Worker
from tests.booth_support import free_port, wait_for, write_config
from tests.mosquitto_broker import MosquittoBroker

SIM_KEY = "watchdog-key"
# The API server goes last: /healthz is asked through it after each of the others.
KILL_ORDER = [
    "session-worker",
    "retention",
    "control-socket",
    "mqtt-outbox",
    "mqtt-commands",
    "mqtt-network",
    "cloud-mirror",
    "api-server",
]


class ThreadKilled(BaseException):
    """Not an Exception: a worker's loop does not catch it, as it would not catch a crash."""


def kill(worker: Worker) -> None:
    """Raise ThreadKilled in the worker's thread until it dies: asyncio swallows a BaseException
    that lands inside a transport's write callback, so the API server may need a second one."""
    assert worker.ident is not None
    deadline = time.monotonic() + 60
    while worker.alive() and time.monotonic() < deadline:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(ThreadKilled))
        worker.wake()  # a worker asleep on its wake event runs Python again at once, and dies
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not worker.alive(), timeout=5)
    assert not worker.alive(), f"{worker.name} survived ThreadKilled for 60 s"


@pytest.fixture
def daemon(tmp_path: Path, booth_images: Path) -> Iterator[Daemon]:
    broker = MosquittoBroker().start()
    sim = CloudSim(tmp_path / "cloud", SIM_KEY).__enter__()
    short = tempfile.TemporaryDirectory(prefix="eg-")  # a unix socket path must stay short
    config = write_config(
        tmp_path / "cfg",
        booth_images,
        api_port=free_port(),
        mqtt=f'host = "{broker.host}"\nport = {broker.port}\nreconnect_min_s = 1\nreconnect_max_s = 1',
        cloud=f'mode = "mirror"\nbase_url = "{sim.base_url}"\napi_key = "{SIM_KEY}"',
        extra=f'[triggers]\ncontrol_socket = "{short.name}/control.sock"',
    )
    built = build(load_config(config))
    built.start()
    yield built
    built.stop()
    built.close()
    sim.__exit__(None, None, None)
    short.cleanup()
    broker.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_each_dead_worker_stops_the_pings_and_is_named_by_healthz(daemon: Daemon, tmp_path: Path) -> None:
    workers = {worker.name: worker for worker in daemon.workers()}
    assert sorted(workers) == sorted(KILL_ORDER)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    notifier = Notifier(str(tmp_path / "notify.sock"))
    base = f"http://127.0.0.1:{daemon.config.api.port}"

    assert watchdog_tick(daemon, notifier, []) == []
    assert sock.recv(4096) == b"WATCHDOG=1"
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        dead: list[str] = []
        for name in KILL_ORDER:
            kill(workers[name])
            dead.append(name)
            assert watchdog_tick(daemon, notifier, dead[:-1]) == [n for n in KILL_ORDER if n in dead]
            with pytest.raises(BlockingIOError):
                sock.recv(4096)  # no ping: the tick sends it before it returns, or never
            if name != "api-server":
                health = http.get("/healthz").json()
                assert health["status"] == "down"
                assert health["down"] == sorted(dead)
                assert {n for n, state in health["components"]["workers"].items() if state == "down"} == set(dead)
    notifier.close()
    sock.close()
