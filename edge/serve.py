"""uvicorn in a thread of this process, bound before it starts: the local API and the cloud simulator."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn


@dataclass
class Served:
    server: uvicorn.Server
    thread: threading.Thread
    socket: socket.socket

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def stop(self, timeout_s: float) -> bool:
        """Ask the server to finish; force it after ``timeout_s``. False when it had to be forced."""
        self.server.should_exit = True
        self.thread.join(timeout_s)
        graceful = not self.thread.is_alive()
        if not graceful:
            self.server.force_exit = True
            self.thread.join(timeout_s)
        self.socket.close()
        return graceful


def serve_in_thread(config: uvicorn.Config, name: str, start_timeout_s: float) -> Served:
    """Bind ``config``'s host and port here, so a port in use fails the caller, then serve in a thread.

    Returns once the server accepts connections; raises RuntimeError when it does not in time.
    """
    sock = config.bind_socket()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            served = Served(server, thread, sock)
            served.stop(1.0)
            raise RuntimeError(f"{name} did not start on {config.host}:{config.port}; see the log above")
        time.sleep(0.02)
    return Served(server, thread, sock)
