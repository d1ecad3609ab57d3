from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from edge.daemon.notify import Notifier, watchdog_interval_s


def test_messages_arrive_as_datagrams(notify_socket: tuple[Path, socket.socket]) -> None:
    path, sock = notify_socket
    notifier = Notifier(str(path))
    assert notifier.ready("ready: booth x")
    assert sock.recv(4096) == b"READY=1\nSTATUS=ready: booth x"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.stopping("bye")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=bye"
    notifier.close()


def test_abstract_namespace_address() -> None:
    name = f"edge-grader-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        Notifier("@" + name).status("hello")
        assert sock.recv(4096) == b"STATUS=hello"
    finally:
        sock.close()


def test_no_socket_means_no_notifications() -> None:
    notifier = Notifier("")
    assert not notifier.enabled
    assert notifier.ready("x") is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval_s() is None
