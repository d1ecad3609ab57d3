"""An httpx client of the Vision Grader contract: ``upload`` then ``process``.

Answers are parsed with the same pydantic models the local API serves (edge/contract.py). Every
failure is raised as a ``CloudError`` subclass that says whether the request may have reached the
cloud (``sent``) and keeps what the cloud said, so the outbox can decide: retry, wait, or give up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from edge.config.cloud import CloudConfig
from edge.contract import ErrorResponse, ImageRef, ProcessRequest, ProcessResponse, UploadResponse
from edge.imageinfo import MEDIA_TYPES, sniff

logger = logging.getLogger(__name__)

UPLOAD_PATH = "/api/upload"
PROCESS_PATH = "/api/process"
BODY_KEPT_CHARS = 2000
# The contract's answers are a few KB. A body past this is no answer of the contract's, and read
# whole it could take the booth past its memory limit, again at every retry.
MAX_ANSWER_BYTES = 1024 * 1024
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
USER_AGENT = "edge-grader-mirror/1"

Model = TypeVar("Model", bound=BaseModel)


class CloudError(Exception):
    """A request that did not give a usable answer.

    ``sent`` is False only when the request certainly never reached the cloud (no connection), so
    repeating it cannot duplicate anything on the cloud's side.
    """

    sent: bool = True


class CloudTransportError(CloudError):
    """No HTTP answer: connection refused or dropped, a timeout, a protocol error."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class CloudHttpError(CloudError):
    """A non-2xx answer; ``error`` is the contract's error text (or the raw body if not in that form)."""

    def __init__(self, status: int, error: str, body: str, retry_after_s: float | None) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error
        self.body = body
        self.retry_after_s = retry_after_s


class CloudContractError(CloudError):
    """A 2xx answer that does not fit the contract's model; ``body`` keeps it for diagnosis."""

    def __init__(self, endpoint: str, status: int, problem: str, body: str) -> None:
        super().__init__(f"{endpoint} answer does not fit the contract ({problem}): {body[:200]!r}")
        self.endpoint = endpoint
        self.status = status
        self.problem = problem
        self.body = body


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class CloudClient:
    """One pooled connection set to the cloud; thread-confined to the mirror's worker."""

    def __init__(self, config: CloudConfig, transport: httpx.BaseTransport | None = None) -> None:
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            write=config.write_timeout_s,
            pool=config.pool_timeout_s,
        )
        # httpx's transport retries cover only failed connects, where nothing was sent: safe to
        # repeat at once. Everything else is retried by the outbox with backoff.
        self._http = httpx.Client(
            base_url=config.base_url,
            timeout=timeout,
            transport=transport or httpx.HTTPTransport(retries=config.connect_retries),
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def upload(self, image: bytes, filename: str, section: str, imei: str) -> UploadResponse:
        content_type = MEDIA_TYPES.get(sniff(image) or "", "application/octet-stream")
        response = self._send(
            "POST",
            UPLOAD_PATH,
            files={"image": (filename, image, content_type)},
            data={"section": section, "imei": imei},
        )
        return self._parse(UPLOAD_PATH, response, UploadResponse)

    def process(
        self, key: str, imei: str, images: Sequence[ImageRef], read_timeout_s: float | None = None
    ) -> ProcessResponse:
        """``read_timeout_s``: how long this call may take to answer (it grows with the session)."""
        body = ProcessRequest(key=key, imei=imei, images=list(images))
        base = self._http.timeout
        timeout = httpx.Timeout(
            connect=base.connect, read=base.read if read_timeout_s is None else read_timeout_s,
            write=base.write, pool=base.pool,
        )  # fmt: skip
        response = self._send("POST", PROCESS_PATH, json=body.model_dump(mode="json"), timeout=timeout)
        return self._parse(PROCESS_PATH, response, ProcessResponse)

    def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """The answer, its body read up to ``MAX_ANSWER_BYTES``; a longer one is a transport error."""
        try:
            with self._http.stream(method, path, **kwargs) as response:  # type: ignore[arg-type]
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise CloudTransportError(
                            f"{path}: an answer of over {MAX_ANSWER_BYTES // 1024} KB, not read further", sent=True
                        )
                # The body is decoded already: the headers that describe its coding on the wire go.
                headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
                return httpx.Response(response.status_code, headers=headers, content=bytes(body),
                                      request=response.request)  # fmt: skip
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            message = f"{path}: cannot connect ({type(exc).__name__}: {exc})"
            raise CloudTransportError(message, sent=False) from exc
        except httpx.TransportError as exc:
            raise CloudTransportError(f"{path}: no answer ({type(exc).__name__}: {exc})", sent=True) from exc

    @staticmethod
    def _parse(endpoint: str, response: httpx.Response, model: type[Model]) -> Model:
        body = response.text
        if not response.is_success:
            try:
                error = ErrorResponse.model_validate_json(body).error
            except ValidationError:
                error = body[:BODY_KEPT_CHARS] or response.reason_phrase
            raise CloudHttpError(
                response.status_code,
                error,
                body[:BODY_KEPT_CHARS],
                parse_retry_after(response.headers.get("Retry-After")),
            )
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]
            )
            kept = body[:BODY_KEPT_CHARS]
            raise CloudContractError(endpoint, response.status_code, problems, kept) from None
