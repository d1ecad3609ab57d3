"""Replay: images from a folder, for demos and tests (the demo booth runs on it)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from edge.capture.errors import CaptureError
from edge.capture.frames import Frame, decode_file
from edge.config.capture import ReplayCamera
from edge.imageinfo import EXTENSIONS

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(suffix for suffixes in EXTENSIONS.values() for suffix in suffixes)


class ReplayCameraBackend:
    def __init__(self, name: str, config: ReplayCamera) -> None:
        self.name = name
        self.config = config
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        if not self.config.folder.is_dir():
            raise CaptureError(f"camera {self.name}: replay folder {self.config.folder} does not exist")

    def _files(self, section: str) -> list[Path]:
        folder = self.config.folder / section
        if not folder.is_dir():
            folder = self.config.folder
        # Not only regular files: a FIFO stands in for a camera that blocks mid-shot in tests.
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())

    def capture(self, section: str) -> Frame:
        files = self._files(section)
        if not files:
            raise CaptureError(f"camera {self.name}: no images to replay for {section}")
        with self._lock:
            index = self._next.get(section, 0)
            if index >= len(files):
                if not self.config.loop:
                    raise CaptureError(f"camera {self.name}: replay of {section} is exhausted")
                index = 0
            self._next[section] = index + 1
        path = files[index]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CaptureError(f"camera {self.name}: cannot read {path.name}: {exc.strerror}") from None
        logger.debug("replayed %s for %s", path.name, section)
        return decode_file(data, self.name)

    def close(self) -> None:
        self._next.clear()
