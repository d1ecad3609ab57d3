"""A body size limit that answers 413 in the contract's error form, without reading the body into memory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.api.errors import ApiError, error_response

# Refused bodies up to this many times the limit are read and discarded so the client gets the 413.
DRAIN_FACTOR = 4


class BodyLimit:
    """Refuse an oversize body with 413 in the contract's form, without reading it into memory.

    Starlette's own body limit answers in plain text, which a kiosk written against the contract
    cannot parse; this one answers ``{"error": ...}`` and stops reading at the limit.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            if declared <= limit * DRAIN_FACTOR:
                await _drain(receive, limit * DRAIN_FACTOR)
            await _too_large(limit)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _drain(receive, limit * DRAIN_FACTOR - received)
                    raise ApiError(413, _too_large_text(limit))
            return message

        await self.app(scope, limited_receive, send)


async def _drain(receive: Receive, budget: int) -> None:
    """Read and discard the rest of a refused body, up to ``budget`` bytes.

    A client still sending when the answer comes sees a reset connection instead of the 413;
    reading a moderate excess (chunk by chunk, nothing kept) lets it read the answer. A body
    far beyond the limit is not read: the connection is closed on it.
    """
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large_text(limit: int) -> str:
    return f"Payload too large: at most {limit / 1e6:.1f} MB"


def _too_large(limit: int) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    response = error_response(413, _too_large_text(limit))
    # The client may still be sending; closing is cleaner than reading what we refused.
    response.headers["connection"] = "close"
    return response
