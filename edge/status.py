"""What the booth is doing, in one place: the MQTT `state` topic, /healthz and /metrics read it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Probe = Callable[[], Any]
ChangeListener = Callable[[], None]


class StatusBoard:
    """Values set by their owners, plus probes read on every snapshot (disk free, outbox depth)."""

    def __init__(self, on_change: ChangeListener | None = None) -> None:
        """``on_change`` hears that a value changed (the MQTT publisher's wake-up), never which."""
        self._values: dict[str, Any] = {}
        self._probes: dict[str, Probe] = {}
        self._on_change = on_change
        self._lock = threading.Lock()
        self.version = 0

    def set(self, key: str, value: Any) -> None:
        """Set a value; listeners hear of it only if it changed."""
        with self._lock:
            if self._values.get(key, object()) == value:
                return
            self._values[key] = value
            self.version += 1
        self._notify()

    def touch(self) -> None:
        """A probe's answer changed in a way worth telling: listeners hear of it as of a set()."""
        with self._lock:
            self.version += 1
        self._notify()

    def probe(self, key: str, probe: Probe) -> None:
        with self._lock:
            self._probes[key] = probe

    def snapshot(self, only: Callable[[str], bool] | None = None) -> dict[str, Any]:
        """Every value and probe, or only the keys ``only`` accepts (their probes alone are run)."""
        with self._lock:
            values = {k: v for k, v in self._values.items() if only is None or only(k)}
            probes = {k: p for k, p in self._probes.items() if only is None or only(k)}
        for key, probe in probes.items():
            try:
                values[key] = probe()
            except Exception as exc:
                # A failing probe (the disk, the database) is itself news, never a crash of the caller.
                logger.warning("status probe %s failed: %s", key, exc)
                values[key] = f"error: {type(exc).__name__}"
        return values

    def _notify(self) -> None:
        # The listener only hears that something changed: running every probe (database queries,
        # disk) on each set() would put that work on the capture-to-result path.
        if self._on_change is None:
            return
        try:
            self._on_change()
        except Exception:
            logger.exception("status listener failed")
