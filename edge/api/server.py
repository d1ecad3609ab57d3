"""uvicorn in a thread of the daemon process: one process, start()/stop() like every component."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time

import uvicorn

from edge.api.app import BoothApi, create_app

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 5


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer:
    """The local API on ``config.api.host:port``; ``port`` is the bound one (config port 0 picks one)."""

    def __init__(self, booth: BoothApi) -> None:
        api = booth.config.api
        self.app = create_app(booth)
        self._config = uvicorn.Config(
            self.app,
            host=api.host,
            port=api.port,
            log_config=None,  # the daemon's logging set-up applies
            access_log=False,  # request lines carry IMEIs in image paths
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = uvicorn.Server(self._config)
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        if not is_loopback(api.host) and not api.keys:
            logger.warning(
                "local API bound to %s without api.keys: anyone on the network can grade and read sessions",
                api.host,
            )

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the API server is not started")
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        # Binding here, not in the thread, makes a port already in use fail start() itself.
        self._socket = self._config.bind_socket()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="api-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the local API server stopped while starting; see the log above")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local API server did not start within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        logger.info("local API listening on %s:%d", self._config.host, self.port)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            logger.warning("local API server did not stop within %.0f s", STOP_TIMEOUT_S)
            self._server.force_exit = True
            self._thread.join(STOP_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
