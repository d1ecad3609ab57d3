"""The local control socket: `edge-grader trigger|arm|status` talk to the running daemon.

One JSON object per line each way on a unix stream socket that only the booth's user (and root)
can open; answers are the contract's error form on failure. A trigger that waits is answered
twice: at once with its session id (``"waiting": true``), then with the result, so a client whose
daemon dies meanwhile still knows the session.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from edge.errors import TriggerRefusedError
from edge.spool.sessions import SessionRecord, SessionStore
from edge.status import StatusBoard
from edge.worker import Worker

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
WAIT_POLL_S = 0.2

Send = Callable[[dict[str, Any]], None]


class AnswerLostError(ConnectionError):
    """The daemon closed the connection before its final answer; ``first`` is what it said before."""

    def __init__(self, first: dict[str, Any] | None) -> None:
        super().__init__("the booth daemon closed the connection before answering")
        self.first = first


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
            answer = self.server.control.handle(request, self._send)
        self._send(answer)

    def _send(self, answer: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(answer).encode() + b"\n")
        self.wfile.flush()


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

    def handle(self, request: dict[str, Any], send: Send | None = None) -> dict[str, Any]:
        """The final answer; ``send`` gives the client an answer before it (a waiting trigger's id)."""
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
                    if send is not None:
                        send({"sessionId": session.id, "status": session.status, "waiting": True})
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
                    "provisional_grade": record.provisional_grade,
                    "reason": record.reason,
                    "result": record.result,
                }
            time.sleep(WAIT_POLL_S)
        return {"sessionId": session_id, "status": "running", "error": "timed out waiting for the result"}


def call(path: Path, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Client side, for the CLI: the final answer; ``AnswerLostError`` when the daemon went first."""
    first: dict[str, Any] | None = None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        with sock.makefile("rb") as lines:
            for line in lines:
                if not line.endswith(b"\n"):
                    break  # cut short: the daemon died while writing
                answer = json.loads(line)
                if not answer.get("waiting"):
                    return dict(answer)
                first = answer
    raise AnswerLostError(first)
