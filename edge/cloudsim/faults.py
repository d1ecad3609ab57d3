"""Fault injection for the simulator, as a plain ASGI layer in front of the contract's app.

It sits outside FastAPI so a fault can do what an app cannot: answer before any route runs, delay
an answer already computed (the upload is stored, the client times out: the honest worst case for
a retrying client), or drop the TCP connection in the middle of an upload. Requests are counted
here too, faulted or not, per endpoint.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.contract import KEY_NOT_FOUND

Endpoint = Literal["upload", "process", "image", "any"]
ADMIN_PREFIX = "/_sim/"
ENDPOINTS = {"/api/upload": "upload", "/api/process": "process"}
SLOW_STEP_S = 0.05
OVERSIZED_CHUNK = 64 * 1024
MALFORMED_ANSWER = {"success": True, "note": "simulated answer that does not fit the contract"}
# The contract shows the upload answer twice: with path and size, and without them.
BRIEF_KEYS = ("success", "url", "section")
FAULT_TEXT = {
    429: "Too many requests (simulated)",
    500: "Internal server error (simulated)",
    502: "Bad gateway (simulated)",
    503: "Service unavailable (simulated)",
    504: "Gateway timeout (simulated)",
}


class FaultRule(BaseModel):
    """One fault: what happens to the next ``count`` requests to ``endpoint`` (None: until cleared)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["error", "slow", "drop", "reject_key", "malformed", "oversized", "brief"] = Field(
        description="error: answer `status`; slow: answer after `delay_s` (work done first); "
        "drop: close the connection mid-request; reject_key: answer 401 key not found; "
        "malformed: answer 200 with a body that does not fit the contract; "
        "oversized: answer 200 with `size_mb` MB of body, for as long as the client reads; "
        "brief: a successful answer with only the keys of the contract's shorter upload example "
        "(success, url, section)"
    )
    endpoint: Endpoint = "any"
    count: int | None = Field(default=1, ge=1, description="requests affected; null = until cleared")
    status: int = Field(default=500, ge=400, le=599, description="for kind=error")
    retry_after_s: int | None = Field(default=None, ge=0, description="Retry-After header, for kind=error")
    delay_s: float = Field(default=0.0, ge=0, le=600, description="for kind=slow")
    size_mb: int = Field(default=256, ge=1, le=4096, description="for kind=oversized")


def endpoint_of(path: str) -> str:
    if path.startswith(ADMIN_PREFIX):
        return "admin"
    if path.startswith("/images/"):
        return "image"
    return ENDPOINTS.get(path, "other")


class FaultPlan:
    """The active rules, with counters of requests and of faults applied; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.requests: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()
        self.oversized_bytes = 0  # of oversized answers, what the clients took before hanging up

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule.model_copy())

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.model_dump() for rule in self._rules]

    def count_oversized(self, sent: int) -> None:
        with self._lock:
            self.oversized_bytes += sent

    def take(self, endpoint: str) -> FaultRule | None:
        """Count the request; the first rule that matches it, used up by one."""
        with self._lock:
            self.requests[endpoint] += 1
            for rule in self._rules:
                if rule.endpoint in ("any", endpoint):
                    if rule.count is not None:
                        rule.count -= 1
                        if rule.count == 0:
                            self._rules.remove(rule)
                    self.applied[f"{rule.kind}:{endpoint}"] += 1
                    return rule
        return None


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    *headers],
    })
    await send({"type": "http.response.body", "body": payload})


def _abort_connection(receive: Receive) -> None:
    """Reset the TCP connection under this request.

    ASGI has no "drop the connection" message, so this reaches the server's transport through the
    receive callable uvicorn hands in (its request cycle object holds it).
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        raise RuntimeError("drop fault needs uvicorn's HTTP/1.1 protocol (h11 or httptools)")
    transport.abort()


class FaultLayer:
    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan
        self.closing = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope["path"])
        rule = None if endpoint == "admin" else self.plan.take(endpoint)
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.kind == "error":
            await _drain(receive)
            headers = [] if rule.retry_after_s is None else [(b"retry-after", str(rule.retry_after_s).encode())]
            await _answer(send, rule.status, {"error": FAULT_TEXT.get(rule.status, "Simulated fault")}, headers)
        elif rule.kind == "reject_key":
            await _drain(receive)
            await _answer(send, 401, {"error": KEY_NOT_FOUND}, [])
        elif rule.kind == "malformed":
            await _drain(receive)
            await _answer(send, 200, MALFORMED_ANSWER, [])
        elif rule.kind == "oversized":
            await _drain(receive)
            await self._oversized(receive, send, rule.size_mb)
        elif rule.kind == "drop":
            await receive()  # part of the body has arrived: now the connection goes
            _abort_connection(receive)
            await receive()  # returns once the server has seen the disconnect: no "no response" error
        elif rule.kind == "brief":
            await self.app(scope, receive, self._brief(send))
        else:
            await self.app(scope, receive, self._delayed(send, rule.delay_s))

    async def _oversized(self, receive: Receive, send: Send, size_mb: int) -> None:
        """A 200 answer without a length, whose body goes on for ``size_mb`` MB while it is read."""
        cycle = getattr(receive, "__self__", None)  # uvicorn's request cycle: it knows of a hang-up
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        chunk = b" " * OVERSIZED_CHUNK
        for _ in range(size_mb * 1024 * 1024 // OVERSIZED_CHUNK):
            if getattr(cycle, "disconnected", False) or self.closing.is_set():
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self.plan.count_oversized(len(chunk))
            await asyncio.sleep(0)  # a send into a free buffer does not yield: let the loop see a hang-up
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def _brief(send: Send) -> Send:
        """The app's answer, a success cut down to BRIEF_KEYS."""
        status = 0
        body = b""

        async def brief_send(message: Message) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
                return
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            answer = json.loads(body)
            if status < 300:
                answer = {k: v for k, v in answer.items() if k in BRIEF_KEYS}
            await _answer(send, status, answer, [])

        return brief_send

    def _delayed(self, send: Send, delay_s: float) -> Send:
        async def delayed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Cut short when the server stops listening, so a shutdown does not wait on it.
                loop = asyncio.get_running_loop()
                deadline = loop.time() + delay_s
                while loop.time() < deadline and not self.closing.is_set():
                    await asyncio.sleep(min(SLOW_STEP_S, deadline - loop.time()))
            await send(message)

        return delayed_send
