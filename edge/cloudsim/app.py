"""The contract as the cloud serves it: ``/api/upload``, ``/api/process``, the issued image URLs.

Same request fields, answer keys and error form as the seed describes; the shapes are the ones in
edge/contract.py. The admin routes under ``/_sim/`` drive fault injection and read the counters.
"""

from __future__ import annotations

import hmac
import json
import re
import uuid
from typing import Any, Protocol

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.api.uploads import ImageRejected, check_image
from edge.cloudsim.analysis import analyse_section
from edge.cloudsim.faults import FaultPlan, FaultRule
from edge.cloudsim.storage import SimStorage, safe_filename
from edge.contract import (
    KEY_NOT_FOUND,
    SECTION_PATTERN,
    ProcessedImage,
    ProcessRequest,
    ProcessResponse,
    UploadResponse,
)
from edge.imageinfo import MEDIA_TYPES, sniff
from edge.imei import InvalidImeiError, validate_imei

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
MAX_PROCESS_BODY = 1024 * 1024
MAX_UPLOAD_PIXELS = 100_000_000
# The cloud's own examples use 123456789012345, whose check digit is wrong: like the cloud, the
# simulator asks for 15 digits and leaves Luhn to the booth.
CHECK_LUHN = False
SECTION_RE = re.compile(SECTION_PATTERN)


class SimError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SimControl(Protocol):
    """What the app needs from the running simulator."""

    storage: SimStorage
    plan: FaultPlan

    @property
    def public_url(self) -> str: ...

    def key_matches(self, key: str) -> bool: ...

    def set_key(self, key: str) -> None: ...

    def refuse_for(self, seconds: float) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class RefuseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(gt=0, le=3600)


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=256)


def _invalid(exc: ValidationError | RequestValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"Invalid request: {where}: {first.get('msg', 'invalid')}"


def create_app(sim: SimControl) -> FastAPI:
    app = FastAPI(title="Vision Grader (simulator)", docs_url=None, redoc_url=None)

    @app.exception_handler(SimError)
    async def sim_error(_request: Request, exc: SimError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _invalid(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.post("/api/upload", response_model=UploadResponse)
    def upload(
        image: UploadFile | None = File(None),  # noqa: B008 - FastAPI's way of declaring a form file
        section: str | None = Form(None),
        imei: str | None = Form(None),
    ) -> dict[str, Any]:
        if image is None:
            raise SimError(400, "Invalid request: image file is required")
        if not section or not SECTION_RE.fullmatch(section):
            raise SimError(400, "Invalid request: section must be a plain lower-case name like front")
        if imei:
            try:
                validate_imei(imei, luhn=CHECK_LUHN)
            except InvalidImeiError as exc:
                raise SimError(400, str(exc)) from None
        data = image.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise SimError(413, f"Invalid request: image larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        try:
            check_image(data, MAX_UPLOAD_PIXELS)
        except ImageRejected:
            raise SimError(400, "Invalid request: image is not a decodable JPEG or PNG") from None
        return sim.storage.store_upload(imei or None, section, safe_filename(image.filename), data, sim.public_url)

    @app.post("/api/process", response_model=ProcessResponse)
    async def process(request: Request) -> dict[str, Any]:
        # Read no more than the limit: a huge body is refused, not held in memory.
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_PROCESS_BODY:
                raise SimError(413, "Invalid request: body too large")
        try:
            parsed = ProcessRequest.model_validate(json.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SimError(400, "Invalid request: body is not JSON") from None
        except ValidationError as exc:
            raise SimError(400, _invalid(exc)) from None
        return await run_in_threadpool(_process, sim, parsed)

    @app.get("/images/{path:path}")
    def image(path: str) -> Response:
        row = sim.storage.upload_by_path(path)
        if row is None:
            raise SimError(404, "Not found")
        data = sim.storage.read(path)
        return Response(data, media_type=MEDIA_TYPES.get(sniff(data) or "", "application/octet-stream"))

    @app.get("/_sim/stats")
    def stats() -> dict[str, Any]:
        return sim.stats()

    @app.post("/_sim/faults")
    def add_fault(rule: FaultRule) -> dict[str, Any]:
        sim.plan.add(rule)
        return {"rules": sim.plan.rules()}

    @app.delete("/_sim/faults")
    def clear_faults() -> dict[str, Any]:
        sim.plan.clear()
        return {"rules": []}

    @app.post("/_sim/refuse")
    def refuse(body: RefuseRequest) -> dict[str, Any]:
        sim.refuse_for(body.seconds)
        return {"refusing_s": body.seconds}

    @app.put("/_sim/key")
    def set_key(body: KeyRequest) -> dict[str, Any]:
        sim.set_key(body.key)
        return {"ok": True}

    return app


def _process(sim: SimControl, request: ProcessRequest) -> dict[str, Any]:
    if not sim.key_matches(request.key):
        raise SimError(401, KEY_NOT_FOUND)
    try:
        imei = validate_imei(request.imei, luhn=CHECK_LUHN)
    except InvalidImeiError as exc:
        raise SimError(400, str(exc)) from None
    images: list[ProcessedImage] = []
    by_section: dict[str, list[bytes]] = {}
    for ref in request.images:
        row = sim.storage.upload_by_url(ref.url)
        if row is None:
            raise SimError(400, "Invalid request: an image url was not issued by this service")
        if row["imei"] not in (None, imei):
            raise SimError(400, "Invalid request: an image was uploaded for another imei")
        if row["section"] != ref.section:
            raise SimError(400, f"Invalid request: an image was uploaded as {row['section']}, not {ref.section}")
        by_section.setdefault(ref.section, []).append(sim.storage.read(row["path"]))
        images.append(ProcessedImage(url=row["url"], section=row["section"], path=row["path"], size=row["size"]))
    response = ProcessResponse(
        sessionId=str(uuid.uuid4()),
        imei=imei,
        analysis={section: analyse_section(data) for section, data in by_section.items()},
        images=images,
    ).model_dump(mode="json")
    sim.storage.add_session(response["sessionId"], imei, response)
    return response


def constant_time_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
