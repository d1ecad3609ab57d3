"""The booth's screen: the page (``GET /``, files under ``/kiosk/``) and what its customer side calls.

The page is plain HTML, CSS and JavaScript shipped inside the package: nothing to build on the Pi
and nothing fetched from elsewhere (the booth is often offline).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from edge.api.errors import ApiError, error_responses
from edge.api.models import KioskConfig, KioskTrigger, TriggerResponse
from edge.contract import KEY_NOT_FOUND
from edge.serve import is_loopback

if TYPE_CHECKING:
    from edge.api.app import BoothApi

PAGE_DIR = Path(__file__).resolve().parent / "kiosk"
# No cache: after an update the screen must not keep running the old script against the new API.
NO_CACHE = {"Cache-Control": "no-cache"}


def install_kiosk(
    app: FastAPI,
    booth: BoothApi,
    key_ok: Callable[[str | None], bool],
    checked_imei: Callable[[str], str],
    started: Callable[[str, str], TriggerResponse],
) -> None:
    """Routes of the page and its customer side; the helpers are create_app's own."""
    config = booth.config

    @app.get("/", response_class=FileResponse, include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html", headers=NO_CACHE)

    app.mount("/kiosk", StaticFiles(directory=PAGE_DIR), name="kiosk")

    @app.get("/api/kiosk/config", response_model=KioskConfig, summary="What the booth's screen needs", tags=["kiosk"])
    def kiosk_config() -> KioskConfig:
        return KioskConfig(
            booth_id=config.booth.id,
            sections=list(config.booth.sections),
            imei_check=config.booth.imei_check,
        )

    @app.post(
        "/api/kiosk/sessions",
        status_code=202,
        response_model=TriggerResponse,
        responses=error_responses(400, 401, 409, 422, 503, 507),
        summary="The booth's own screen photographs the device: no key from loopback, else the API key",
        tags=["kiosk"],
    )
    def kiosk_trigger(body: KioskTrigger, request: Request) -> TriggerResponse:
        # The customer at the booth's screen holds no key; the screen runs on the booth itself.
        local = request.client is not None and is_loopback(request.client.host)
        if not local and not key_ok(body.key):
            raise ApiError(401, KEY_NOT_FOUND)
        return started(checked_imei(body.imei), "kiosk")
