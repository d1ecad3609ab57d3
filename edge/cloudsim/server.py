"""The simulator as a real HTTP server on its own thread, that can stop and resume listening."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from edge.cloudsim.app import constant_time_equal, create_app
from edge.cloudsim.faults import FaultLayer, FaultPlan, FaultRule
from edge.cloudsim.storage import SimStorage
from edge.serve import Served, serve_in_thread

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
GRACEFUL_STOP_S = 1
STOP_TIMEOUT_S = 30.0


class CloudSim:
    """A Vision Grader cloud on loopback, with its own storage and run-time fault injection.

    ``stop_listening()`` closes the port (clients get "connection refused"), ``start_listening()``
    opens the same port again; storage and counters live on.
    """

    def __init__(
        self, storage_dir: Path, key: str, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None
    ) -> None:
        self.storage = SimStorage(storage_dir)
        self.plan = FaultPlan()
        self.host = host
        self.port = port
        self._public_url = public_url.rstrip("/") if public_url else None
        self._key = key
        self._lock = threading.Lock()
        self._asgi = FaultLayer(create_app(self), self.plan)
        self._served: Served | None = None

    # -- what the app asks -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def public_url(self) -> str:
        return self._public_url or self.base_url

    def key_matches(self, key: str) -> bool:
        with self._lock:
            return constant_time_equal(key, self._key)

    def set_key(self, key: str) -> None:
        """Rotate the accepted key (a booth still sending the old one is now refused)."""
        with self._lock:
            self._key = key

    def stats(self) -> dict[str, Any]:
        """Requests per endpoint (faulted included), faults applied, and what was stored."""
        return {
            "requests": dict(self.plan.requests),
            "faults_applied": dict(self.plan.applied),
            "oversized_bytes_sent": self.plan.oversized_bytes,
            "faults_active": self.plan.rules(),
            "listening": self.listening,
            **self.storage.counts(),
        }

    # -- faults ---------------------------------------------------------------------------------------

    def add_fault(self, **rule: Any) -> None:
        """E.g. ``add_fault(kind="error", status=429, retry_after_s=2, endpoint="upload", count=3)``."""
        self.plan.add(FaultRule(**rule))

    def clear_faults(self) -> None:
        self.plan.clear()

    def refuse_for(self, seconds: float) -> None:
        """Stop listening now and listen again after ``seconds`` (from any thread, the admin API too)."""
        def cycle() -> None:
            self.stop_listening()
            time.sleep(seconds)
            self.start_listening()

        threading.Thread(target=cycle, name="cloudsim-refuse", daemon=True).start()

    # -- listening ------------------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._served is not None

    def start(self) -> CloudSim:
        self.start_listening()
        return self

    def stop(self) -> None:
        self.stop_listening()
        self.storage.close()

    def __enter__(self) -> CloudSim:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start_listening(self) -> None:
        with self._lock:
            if self._served is not None:
                return
            config = uvicorn.Config(
                self._asgi,
                host=self.host,
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                ws="none",
                http="h11",
                proxy_headers=False,
                timeout_graceful_shutdown=GRACEFUL_STOP_S,
            )
            self._asgi.closing.clear()
            self._served = serve_in_thread(config, "cloudsim", START_TIMEOUT_S)
            self.port = self._served.port
        logger.info("cloud simulator listening on %s", self.base_url)

    def stop_listening(self) -> None:
        with self._lock:
            served, self._served = self._served, None
        if served is None:
            return
        self._asgi.closing.set()
        served.stop(STOP_TIMEOUT_S)
        logger.info("cloud simulator stopped listening on %s", self.base_url)
