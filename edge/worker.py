"""The one shape of every long-lived thread in the daemon: start, wake, stop, alive().

A worker runs ``step()`` in a loop. ``step`` returns how long the worker may sleep before the next
round (``wake()`` cuts the sleep short); an exception is logged and the worker backs off (capped,
jittered) instead of dying or spinning. A worker whose job is one blocking call (a server's
``serve_forever``, paho's network loop) gives ``interrupt``, which ``stop()`` calls to end it.
The daemon stops workers in the reverse order it started them, before the database closes, and
its watchdog pings systemd only while every worker is ``alive()``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge.backoff import backoff_delay

logger = logging.getLogger(__name__)

ERROR_BACKOFF_BASE_S = 1.0
ERROR_BACKOFF_CAP_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 10.0


class Worker:
    def __init__(
        self,
        name: str,
        step: Callable[[], float | None],
        *,
        wake: threading.Event | None = None,
        interrupt: Callable[[], None] | None = None,
        finish: Callable[[], None] | None = None,
    ) -> None:
        """``wake`` lets another part share the wake-up event; ``finish`` runs on this thread at the end."""
        self.name = name
        self._step = step
        self._wake = wake or threading.Event()
        self._interrupt = interrupt
        self._finish = finish
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until woken or stopped; True when the worker should stop."""
        if self._wake.wait(max(0.0, seconds)):
            self._wake.clear()
        return self._stop.is_set()

    def alive(self) -> bool:
        """Started and still running (a stopped worker is not alive)."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    @property
    def ident(self) -> int | None:
        return None if self._thread is None else self._thread.ident

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> bool:
        """Ask the loop to end and wait for it; False (and a warning) when it did not end in time."""
        thread = self._thread
        if thread is None:
            return True
        self._stop.set()
        self._wake.set()
        if self._interrupt is not None:
            try:
                self._interrupt()
            except Exception:
                logger.exception("%s: interrupt failed", self.name)
        thread.join(timeout_s)
        if thread.is_alive():
            logger.warning("%s did not stop within %.0f s", self.name, timeout_s)
            return False
        self._thread = None
        return True

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                pause = self._step()
                failures = 0
            except Exception:
                failures += 1
                pause = backoff_delay(failures, ERROR_BACKOFF_BASE_S, ERROR_BACKOFF_CAP_S)
                logger.exception("%s: step failed; next try in %.1f s", self.name, pause)
            if pause:
                self.sleep(pause)
        if self._finish is not None:
            try:
                self._finish()
            except Exception:
                logger.exception("%s: could not finish cleanly", self.name)
