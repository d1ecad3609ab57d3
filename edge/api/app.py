"""The local API: the Vision Grader contract (/api/upload, /api/process) plus the booth's endpoints.

Routes that touch SQLite, files or the model are plain ``def``: FastAPI runs them in its thread
pool, so a slow grading never blocks the event loop, and each thread has its own SQLite connection.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose Form()
# descriptions use values local to create_app().
import hmac
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from edge.api.errors import ApiError, error_responses, install_error_handlers
from edge.api.kiosk import install_kiosk
from edge.api.limits import BodyLimit
from edge.api.metrics import ApiMetrics
from edge.api.models import (
    ArmRequest,
    ArmResponse,
    Health,
    SessionPage,
    SessionView,
    TriggerRequest,
    TriggerResponse,
)
from edge.api.technician import KEY_HEADER, Desk, install_technician
from edge.api.uploads import ImageRejected, Upload, UploadStore, check_image, sanitize_filename
from edge.api.views import session_view
from edge.config.root import AppConfig
from edge.config.secrets import present
from edge.contract import KEY_NOT_FOUND, BoothProcessResponse, ProcessRequest, UploadResponse
from edge.errors import SessionFailedError, TriggerRefusedError
from edge.imageinfo import media_type
from edge.imei import InvalidImeiError, mask_imei
from edge.serve import is_loopback
from edge.spool.reserve import disk_full
from edge.spool.sessions import SAFE_NAME, SessionRecord, SessionStore
from edge.status import StatusBoard

logger = logging.getLogger(__name__)

# Multipart framing around the file (boundaries, part headers, the section and imei fields).
MULTIPART_OVERHEAD = 64 * 1024
MAX_URL_SHOWN = 120
# An upload waits this long for a decode slot before it is refused; a client retries after Retry-After.
DECODE_WAIT_S = 2.0
DECODE_RETRY_AFTER_S = 2
SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REFUSAL_STATUS = {"invalid_imei": 400, "busy": 409, "request_conflict": 409, "stopping": 503, "disk_low": 507}
# /healthz component -> the StatusBoard key it shows.
HEALTH_KEYS = {
    "cameras": "cameras",
    "model": "model",
    "broker": "mqtt_connected",
    "cloud": "cloud",
    "disk_free_mb": "disk_free_mb",
    "activity": "activity",
    "workers": "workers",
}


class BoothApi(Protocol):
    """What the API needs of ``edge.daemon.booth.Booth``."""

    config: AppConfig
    store: SessionStore
    status: StatusBoard

    def check_imei(self, imei: object) -> str: ...

    def trigger(self, imei: str, source: str, request_id: str | None = None) -> SessionRecord: ...

    def arm(self, imei: str) -> None: ...

    def process_uploads(
        self, imei: str, uploads: Sequence[tuple[str, str, str]], source: str = "api"
    ) -> dict[str, Any]: ...

    def image_url(self, path: str) -> str: ...

    def disk_problem(self, writing: int = 0, needs_mb: int | None = None) -> str | None: ...


def refusal(exc: TriggerRefusedError) -> ApiError:
    """A full session queue is 503 with Retry-After (clients of the contract retry on it)."""
    if exc.retry_after_s is not None:
        return ApiError(503, exc.message, {"Retry-After": str(exc.retry_after_s)})
    return ApiError(REFUSAL_STATUS.get(exc.code, 503), exc.message)


def one_of(key: str | None, keys: Sequence[bytes]) -> bool:
    """Whether ``key`` is one of ``keys``, compared against every one, always, so the time taken
    says nothing about which matched."""
    if key is None:
        return False
    given = key.encode()
    return any([hmac.compare_digest(given, k) for k in keys])


def create_app(booth: BoothApi, uploads: UploadStore, metrics: ApiMetrics, desk: Desk | None = None) -> FastAPI:
    """``desk`` (the running daemon's) adds the technician's routes and each session's delivery state."""
    config = booth.config
    api = config.api
    sections = list(config.booth.sections)
    keys = present(api.keys)
    technician_keys = present(api.technician_keys)
    max_upload = int(api.max_upload_mb * 1_000_000)
    max_pixels = int(api.max_upload_megapixels * 1_000_000)
    max_json = api.max_json_kb * 1024
    # Bounds the memory of uploads: only this many bodies are in memory and decoded at once.
    decode_slots = threading.BoundedSemaphore(api.max_concurrent_decodes)
    images_root = booth.store.images_root.resolve()

    app = FastAPI(
        title="edge-grader local API",
        version="1",
        description=(
            "The Vision Grader upload/process contract served by the booth, plus the booth's own "
            'endpoints. Every error answers {"error": "<text>"}.'
        ),
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: max_upload + MULTIPART_OVERHEAD if path == "/api/upload" else max_json,
    )

    def key_ok(key: str | None) -> bool:
        if not keys:
            return True  # no keys configured: the API trusts whoever can reach it (loopback)
        return one_of(key, keys)

    def technician_key_ok(key: str | None) -> bool:
        return one_of(key, technician_keys)

    def checked_section(section: str) -> str:
        if section not in sections:
            raise ApiError(400, f"Invalid request: section must be one of {', '.join(sections)}")
        return section

    def reader(request: Request, key: Annotated[str | None, Header(alias=KEY_HEADER)] = None) -> None:
        """Sessions carry customers' IMEIs and their photos' paths: the booth's own screen
        (loopback) reads them freely, anyone else with a key (``X-Booth-Key``).

        A photo's URL is not held to this: the contract says an upload's ``url`` is where the image
        can be fetched, and clients written for the cloud fetch it with no key. Its path (IMEI,
        millisecond, name) is known to whoever uploaded it or may read its session."""
        local = request.client is not None and is_loopback(request.client.host)
        if not local and not key_ok(key) and not technician_key_ok(key):
            raise ApiError(401, KEY_NOT_FOUND)

    def authorised_imei(key: str | None, imei: str) -> str:
        """The key first: a caller without one learns nothing about the IMEI rules."""
        if not key_ok(key):
            raise ApiError(401, KEY_NOT_FOUND)
        return checked_imei(imei)

    def checked_imei(imei: str) -> str:
        try:
            return booth.check_imei(imei)
        except InvalidImeiError as exc:
            raise ApiError(400, str(exc)) from None

    def started(imei: str, source: str, request_id: str | None = None) -> TriggerResponse:
        """Queue a capture session for a checked IMEI; the booth's refusal as the API's error."""
        try:
            session = booth.trigger(imei, source=source, request_id=request_id)
        except TriggerRefusedError as exc:
            raise refusal(exc) from None
        return TriggerResponse(sessionId=session.id, status=session.status)  # type: ignore[arg-type]

    # -- the contract ----------------------------------------------------------------------------

    @app.post(
        "/api/upload",
        response_model=UploadResponse,
        responses=error_responses(400, 413, 422, 500, 503, 507),
        summary="Upload one image; answers the URL to name in /api/process",
        tags=["contract"],
    )
    def upload(
        image: Annotated[UploadFile, File(description="a JPEG or PNG photo of one section")],
        section: Annotated[str, Form(max_length=64, description=f"one of {', '.join(sections)}")],
        imei: Annotated[str | None, Form(max_length=64, description="optional; 15 digits, Luhn")] = None,
    ) -> UploadResponse:
        section = checked_section(section)
        device = checked_imei(imei) if imei else None
        if not decode_slots.acquire(timeout=DECODE_WAIT_S):
            raise ApiError(
                503,
                f"Booth busy: {api.max_concurrent_decodes} uploads are being checked; try again shortly",
                {"Retry-After": str(DECODE_RETRY_AFTER_S)},
            )
        try:
            stored = store_upload(image, section, device)
        finally:
            decode_slots.release()
        metrics.uploads.inc()
        metrics.upload_bytes.inc(stored.size)
        logger.info(
            "upload %s (%d bytes) for %s",
            stored.path.rsplit("/", 1)[-1],
            stored.size,
            mask_imei(device) if device else "no imei",
        )
        url = booth.image_url(stored.path)
        return UploadResponse(url=url, path=stored.path, size=stored.size, section=stored.section)

    def store_upload(image: UploadFile, section: str, device: str | None) -> Upload:
        """Read, check and store one upload (in a decode slot: the body and its decode are in memory)."""
        data = image.file.read(max_upload + 1)
        if len(data) > max_upload:
            raise ApiError(413, f"Image too large: at most {api.max_upload_mb:g} MB")
        try:
            kind = check_image(data, max_pixels)
            name = sanitize_filename(image.filename, kind)
        except ImageRejected as exc:
            raise ApiError(exc.status, str(exc)) from None
        # Anyone on the network may upload: uploads stop where the disk emergency would begin, so
        # they can never make the booth delete photos of its sessions, nor take the room it grades in.
        problem = booth.disk_problem(len(data), config.storage.emergency_level_mb)
        if problem is not None:
            raise ApiError(507, f"Not enough disk for the upload: booth {problem}")
        try:
            return uploads.save(data, section, device, name)
        except Exception as exc:
            if disk_full(exc):
                raise ApiError(507, "Not enough disk for the upload: booth disk is full") from None
            raise

    @app.post(
        "/api/process",
        response_model=BoothProcessResponse,
        responses=error_responses(400, 401, 410, 422, 500, 503, 507),
        summary="Grade uploaded images on the booth; answers the contract's analysis plus the booth's fields",
        tags=["contract"],
    )
    def process(body: ProcessRequest) -> BoothProcessResponse:
        imei = authorised_imei(body.key, body.imei)
        resolved: list[tuple[str, str, str]] = []
        for index, ref in enumerate(body.images):
            section = checked_section(ref.section)
            stored = uploads.by_url(ref.url)
            if stored is None:
                shown = ref.url if len(ref.url) <= MAX_URL_SHOWN else ref.url[:MAX_URL_SHOWN] + "..."
                raise ApiError(
                    400, f"Invalid request: images[{index}].url {shown!r} was not issued by this booth"
                )
            if stored.section != section:
                raise ApiError(
                    400,
                    f"Invalid request: images[{index}] was uploaded as {stored.section!r}, not {section!r}",
                )
            if stored.imei is not None and stored.imei != imei:
                raise ApiError(400, f"Invalid request: images[{index}] was uploaded for a different imei")
            if stored.expired_at is not None or not (booth.store.images_root / stored.path).is_file():
                raise ApiError(410, f"Image no longer stored: images[{index}] was removed by retention")
            resolved.append((section, stored.path, stored.sha256))
        started = time.monotonic()
        try:
            result = booth.process_uploads(imei, resolved)
        except TriggerRefusedError as exc:
            raise refusal(exc) from None
        except SessionFailedError as exc:
            raise ApiError(500, f"Grading failed: {exc.reason}") from None
        metrics.process.observe(time.monotonic() - started)
        try:
            response = BoothProcessResponse.model_validate(result)
        except ValidationError:
            logger.exception(
                "session %s: the booth's answer does not fit the contract", result.get("sessionId")
            )
            raise ApiError(500, "Internal error: the booth's answer does not fit the contract") from None
        return response

    # -- the booth's endpoints -------------------------------------------------------------------

    @app.post(
        "/api/arm",
        response_model=ArmResponse,
        responses=error_responses(400, 401, 422),
        summary="Arm the booth's GPIO trigger (button or drawer) for this IMEI",
        tags=["booth"],
    )
    def arm(body: ArmRequest) -> ArmResponse:
        booth.arm(authorised_imei(body.key, body.imei))
        return ArmResponse(armed_for_s=config.triggers.armed_imei_ttl_s)

    @app.post(
        "/api/sessions",
        status_code=202,
        response_model=TriggerResponse,
        responses=error_responses(400, 401, 409, 422, 503, 507),
        summary="Photograph the device in the booth for an IMEI; answers the session id at once",
        tags=["booth"],
    )
    def trigger(body: TriggerRequest) -> TriggerResponse:
        return started(authorised_imei(body.key, body.imei), "http", body.request_id)

    def view(record: SessionRecord) -> SessionView:
        return session_view(booth, desk, record)

    @app.get(
        "/api/sessions/{session_id}",
        response_model=SessionView,
        responses=error_responses(401, 404, 422),
        summary="One session: status, the booth's answer once finished, its images",
        tags=["booth"],
        dependencies=[Depends(reader)],
    )
    def get_session(session_id: str) -> SessionView:
        record = booth.store.get(session_id) if SESSION_ID.fullmatch(session_id) else None
        if record is None:
            raise ApiError(404, "Session not found")
        return view(record)

    @app.get(
        "/api/sessions",
        response_model=SessionPage,
        responses=error_responses(401, 422),
        summary="Sessions, newest first; page with `before`",
        tags=["booth"],
        dependencies=[Depends(reader)],
    )
    def list_sessions(
        limit: Annotated[int, Query(ge=1, le=api.sessions_page_max)] = 20,
        before: Annotated[float | None, Query(ge=0, le=1e11, description="created_at to page from")] = None,
    ) -> SessionPage:
        records = booth.store.list(limit=limit, before=before)
        next_before = records[-1].created_at if len(records) == limit else None
        return SessionPage(sessions=[view(r) for r in records], next_before=next_before)

    @app.get(
        "/api/images/{path:path}",
        response_class=FileResponse,
        responses={
            200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The image"},
            **error_responses(400, 404),
        },
        summary="An uploaded image, a captured original or an overlay",
        tags=["booth"],
    )
    def get_image(path: str) -> FileResponse:
        parts = path.split("/")
        if not all(SAFE_NAME.fullmatch(part) for part in parts):
            raise ApiError(400, "Invalid request: image path must be <imei>/<section>/<file>")
        # Only files the booth recorded are served: a client path never reaches the disk unchecked.
        if uploads.by_path(path) is None and booth.store.image_by_path(path) is None:
            raise ApiError(404, "Image not found")
        target = (images_root / path).resolve()
        kind = media_type(target.name)
        if not target.is_relative_to(images_root) or not target.is_file() or kind is None:
            raise ApiError(404, "Image not found")
        return FileResponse(target, media_type=kind)

    @app.get("/healthz", response_model=Health, summary="Liveness and the state of each part", tags=["booth"])
    def healthz() -> Health:
        snapshot = booth.status.snapshot()
        components = {name: snapshot.get(key) for name, key in HEALTH_KEYS.items()}
        down = sorted(name for name, state in (components["workers"] or {}).items() if state != "alive")
        problems = [problem] if (problem := snapshot.get("disk_problem")) else []
        state = "down" if down else "degraded" if problems else "ok"
        return Health(status=state, down=down, problems=problems, booth_id=config.booth.id, components=components)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"}
        },
        summary="Prometheus metrics",
        tags=["booth"],
    )
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    install_kiosk(app, booth, key_ok, checked_imei, started)
    if desk is not None:
        install_technician(app, desk, bool(technician_keys), technician_key_ok, view)
    return app
