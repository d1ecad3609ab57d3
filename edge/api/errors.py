"""Every error the local API gives is the contract's ``{"error": "<text>"}``, never ``{"detail": ...}``.

FastAPI answers malformed JSON, wrong types and missing fields with its own 422 shape; the kiosk is
written against the cloud, so these handlers translate every such case into the contract's form.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.contract import KEY_NOT_FOUND, ErrorResponse

logger = logging.getLogger(__name__)

MAX_ERRORS_SHOWN = 3
MAX_LOC_PARTS = 6


class ApiError(StarletteHTTPException):
    """An answer in the contract's error form with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# The error responses each route documents in OpenAPI: every one has the contract's error body.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


_DESCRIPTIONS = {
    400: "Invalid request (bad IMEI, section, file, URL or malformed JSON)",
    401: KEY_NOT_FOUND,
    403: "The technician's routes are off: no [api] keys are configured",
    404: "Not found",
    405: "Method not allowed",
    409: "The booth is busy with another session, or a technician's action conflicts with the booth's state",
    410: "The uploaded image is no longer stored",
    413: "Body or image too large",
    415: "Unsupported media type",
    422: "A field is missing or has the wrong type",
    500: "Grading failed or internal error",
    503: "The booth is busy (see Retry-After) or stopping",
    507: "Not enough free disk for a new session or upload",
}


def _describe_validation(exc: RequestValidationError) -> tuple[int, str]:
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return 400, "Invalid request: body is not valid JSON"
    parts = []
    for err in errors[:MAX_ERRORS_SHOWN]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"][:MAX_LOC_PARTS]
        field = ".".join(loc) or "body"
        kind = err.get("type", "")
        if kind == "missing":
            parts.append(f"{field} is required")
        elif kind == "extra_forbidden":
            parts.append(f"{field} is not a known field")
        else:
            parts.append(f"{field}: {err.get('msg', 'invalid value')}")
    more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
    return 422, "Invalid request: " + "; ".join(parts) + more


async def _validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, message = _describe_validation(exc)
    return error_response(status, message)


async def _http_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "Not found"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    # The path may hold an IMEI (/api/images/<imei>/...): log the route, not the URL.
    route = request.scope.get("route")
    logger.error("unhandled error in %s %s", request.method, getattr(route, "path", "?"), exc_info=exc)
    return error_response(500, "Internal error: the booth could not complete the request")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
