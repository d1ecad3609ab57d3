"""Fixtures shared across the suite."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# gpiozero must never look for real pins in tests.
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

from edge.spool.db import Database
from edge.spool.sessions import SessionStore
from tests.booth_support import render_booth_images, render_cracked_booth_images


@pytest.fixture(scope="session")
def booth_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo photos rendered once per test run, used by replay cameras."""
    return render_booth_images(tmp_path_factory.mktemp("booth-images"))


@pytest.fixture(scope="session")
def cracked_booth_images(tmp_path_factory: pytest.TempPathFactory, booth_images: Path) -> Path:
    """Replay photos of a cracked phone (front) for review sessions."""
    return render_cracked_booth_images(tmp_path_factory.mktemp("cracked-booth-images"), booth_images)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SessionStore]:
    """A spool (real SQLite file, real image folder) of its own."""
    db = Database(tmp_path / "spool.db")
    yield SessionStore(db, tmp_path / "images")
    db.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    """A real unix datagram socket standing in for systemd's $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(120)
    yield path, sock
    sock.close()
