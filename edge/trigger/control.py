"""The local control socket: `edge-grader trigger|arm|status` talk to the running daemon.

One JSON object per line each way on a unix stream socket that only the booth's user (and root)
can open; answers are the contract's error form on failure.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import time
from pathlib import Path
from typing import Any, Protocol

from edge.errors import TriggerRefusedError
from edge.spool.sessions import SessionRecord, SessionStore
from edge.status import StatusBoard
from edge.worker import Worker

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
WAIT_POLL_S = 0.2


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST_BYTES)
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            answer: dict[str, Any] = {"error": "Invalid request: one JSON object per line expected"}
        else:
            answer = self.server.control.handle(request)
        self.wfile.write(json.dumps(answer).encode() + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    control: ControlSocket


class BoothControl(Protocol):
    """What the control socket needs of the booth."""

    store: SessionStore
    status: StatusBoard

    def trigger(self, imei: str, source: str, request_id: str | None = None) -> SessionRecord: ...

    def arm(self, imei: str) -> None: ...


class ControlSocket:
    def __init__(self, booth: BoothControl, path: Path) -> None:
        self.booth = booth
        self.path = path
        self._server: _Server | None = None
        self.worker = Worker("control-socket", self._serve, interrupt=self._shutdown)

    @property
    def workers(self) -> list[Worker]:
        return [self.worker]

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        server = _Server(str(self.path), _Handler)
        server.control = self
        self.path.chmod(0o660)
        self._server = server
        self.worker.start()

    def _serve(self) -> float:
        assert self._server is not None
        self._server.serve_forever()
        return 0.0

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def stop(self) -> None:
        self.worker.stop()
        if self._server is not None:
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("cmd")
        try:
            # Checked before the trigger: a bad wait must not leave a session running unasked.
            timeout_s = float(request.get("timeout_s", 120))
        except (TypeError, ValueError):
            return {"error": "Invalid request: timeout_s must be a number of seconds"}
        try:
            if command == "trigger":
                session = self.booth.trigger(str(request.get("imei", "")), "cli", request.get("request_id"))
                if request.get("wait"):
                    return self._wait(session.id, timeout_s)
                return {"sessionId": session.id, "status": session.status}
            if command == "arm":
                self.booth.arm(str(request.get("imei", "")))
                return {"armed": True}
            if command == "status":
                return {"status": self.booth.status.snapshot()}
        except TriggerRefusedError as exc:
            return {"error": exc.message, "code": exc.code}
        return {"error": f"Invalid request: unknown command {command!r} (trigger, arm, status)"}

    def _wait(self, session_id: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            record = self.booth.store.get(session_id)
            if record is not None and record.finished:
                return {
                    "sessionId": record.id,
                    "status": record.status,
                    "grade": record.grade,
                    "reason": record.reason,
                    "result": record.result,
                }
            time.sleep(WAIT_POLL_S)
        return {"sessionId": session_id, "status": "running", "error": "timed out waiting for the result"}


def call(path: Path, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Client side, for the CLI."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        chunks = []
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return json.loads(b"".join(chunks))
