"""The technician's side of the booth's screen: every route needs the local API key, in the
``X-Booth-Key`` header (the page keeps it in the tab's memory, never in a URL or the page)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Header

from edge.api.errors import ApiError, error_responses
from edge.api.models import CalibrateRequest, CalibrateResponse, CameraTestShot, ReviewDecision, SessionView, TechState
from edge.capture.calibrate import CalibrationError
from edge.capture.errors import CaptureError
from edge.contract import KEY_NOT_FOUND
from edge.spool.sessions import AlreadyReviewedError, SessionRecord, SessionStore

KEY_HEADER = "X-Booth-Key"
REVIEW_QUEUE_MAX = 50


class Desk(Protocol):
    """What these routes need of ``edge.daemon.technician.TechnicianDesk``."""

    store: SessionStore

    def state(self) -> dict[str, Any]: ...

    def review(self, session_id: str, grade: str, reviewed_by: str, note: str) -> SessionRecord: ...

    def test_shot(self, camera: str) -> dict[str, Any]: ...

    def calibrate(self, camera: str, force: bool) -> str: ...

    def recent_events(self) -> list[dict[str, Any]]: ...

    def delivery(self, session_id: str) -> dict[str, str | None]: ...


def install_technician(
    app: FastAPI,
    desk: Desk,
    keys_set: bool,
    key_ok: Callable[[str | None], bool],
    view: Callable[[SessionRecord], SessionView],
) -> None:
    def technician(key: Annotated[str | None, Header(alias=KEY_HEADER)] = None) -> None:
        # The technician's own keys, never the clients' (kiosk software holds those): without them,
        # no technician view, even where the API trusts everyone.
        if not keys_set:
            raise ApiError(403, "Technician view is off: set [api] technician_keys to use it")
        if not key_ok(key):
            raise ApiError(401, KEY_NOT_FOUND)

    router = APIRouter(prefix="/api/tech", tags=["technician"], dependencies=[Depends(technician)])

    @router.get("/state", response_model=TechState, responses=error_responses(401, 403), summary="The booth now")
    def state() -> TechState:
        return TechState.model_validate(desk.state())

    @router.get(
        "/reviews", response_model=list[SessionView], responses=error_responses(401, 403),
        summary="Sessions waiting for a technician's review, oldest first",
    )  # fmt: skip
    def reviews() -> list[SessionView]:
        return [view(record) for record in desk.store.with_status("review", REVIEW_QUEUE_MAX)]

    @router.post(
        "/reviews/{session_id}", response_model=SessionView, responses=error_responses(401, 403, 404, 409, 422),
        summary="Decide a review: the grade (the provisional one or another) and a note",
    )  # fmt: skip
    def decide(session_id: str, body: ReviewDecision) -> SessionView:
        try:
            record = desk.review(session_id, body.grade, body.technician, body.note)
        except KeyError:
            raise ApiError(404, "Session not found") from None
        except AlreadyReviewedError as exc:
            raise ApiError(409, f"Conflict: {exc}") from None
        return view(record)

    @router.get("/events", responses=error_responses(401, 403), summary="The booth's recent events, newest first")
    def events() -> list[dict[str, Any]]:
        return desk.recent_events()

    @router.post(
        "/cameras/{camera}/test-shot", response_model=CameraTestShot, responses=error_responses(401, 403, 503),
        summary="One photo from a camera and the quality gate's verdict on it",
    )  # fmt: skip
    def test_shot(camera: str) -> CameraTestShot:
        try:
            return CameraTestShot.model_validate(desk.test_shot(camera))
        except CaptureError as exc:
            raise ApiError(503, f"Camera unavailable: {exc}") from None

    @router.post(
        "/cameras/{camera}/calibrate", response_model=CalibrateResponse, responses=error_responses(401, 403, 409, 503),
        summary="Photograph the empty booth with a camera and use it as that camera's background",
    )  # fmt: skip
    def calibrate(camera: str, body: CalibrateRequest) -> CalibrateResponse:
        try:
            stored = desk.calibrate(camera, body.force)
        except CaptureError as exc:
            raise ApiError(503, f"Camera unavailable: {exc}") from None
        except CalibrationError as exc:
            raise ApiError(409, f"Conflict: {exc}") from None
        return CalibrateResponse(camera=camera, stored=stored)

    app.include_router(router)
