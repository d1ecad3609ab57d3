"""uvicorn on a worker of this process, bound before it starts: the local API and the cloud simulator."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

import uvicorn

from edge.worker import Worker

# A server that ends on its own (not on stop) is started again after this pause.
RESTART_S = 1.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Served:
    server: uvicorn.Server
    worker: Worker
    socket: socket.socket

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def stop(self, timeout_s: float) -> bool:
        """Ask the server to finish; force it after ``timeout_s``. False when it had to be forced."""
        graceful = self.worker.stop(timeout_s)
        if not graceful:
            self.server.force_exit = True
            self.worker.stop(timeout_s)
        self.socket.close()
        return graceful


def serve_in_thread(config: uvicorn.Config, name: str, start_timeout_s: float) -> Served:
    """Bind ``config``'s host and port here, so a port in use fails the caller, then serve on a worker.

    Returns once the server accepts connections; raises RuntimeError when it does not in time.
    """
    sock = config.bind_socket()
    server = uvicorn.Server(config)

    def serve() -> float:
        server.run(sockets=[sock])
        return RESTART_S

    def interrupt() -> None:
        server.should_exit = True

    worker = Worker(name, serve, interrupt=interrupt)
    worker.start()
    served = Served(server, worker, sock)
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not worker.alive() or time.monotonic() > deadline:
            served.stop(1.0)
            raise RuntimeError(f"{name} did not start on {config.host}:{config.port}; see the log above")
        time.sleep(0.02)
    return served
