"""A stored session as the local API shows it: the record, its images and where its result went."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

from edge.api.models import SessionImage, SessionView
from edge.contract import BoothProcessResponse
from edge.spool.sessions import SessionRecord

if TYPE_CHECKING:
    from edge.api.app import BoothApi
    from edge.api.technician import Desk

logger = logging.getLogger(__name__)


def session_view(booth: BoothApi, desk: Desk | None, record: SessionRecord) -> SessionView:
    images = [
        SessionImage(
            url=booth.image_url(image.path),
            section=image.section,
            shot=image.shot,
            kind=image.kind,  # type: ignore[arg-type]
            path=image.path,
            size=image.size,
        )
        for image in booth.store.images(record.id)
    ]
    result = None
    if record.result is not None:
        try:
            result = BoothProcessResponse.model_validate(record.result)
        except ValidationError:
            logger.error("session %s: stored result does not fit the contract; shown without it", record.id)
    return SessionView(
        sessionId=record.id,
        imei=record.imei,
        source=record.source,
        request_id=record.request_id,
        status=record.status,  # type: ignore[arg-type]
        reason=record.reason,
        grade=record.grade,
        provisional_grade=record.provisional_grade,
        reviewed_by=record.reviewed_by,
        review_note=record.review_note,
        reviewed_at=record.reviewed_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
        result=result,
        cloud=record.cloud,
        images=images,
        delivery=desk.delivery(record.id) if desk is not None else {},
    )
