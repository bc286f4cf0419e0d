"""Ops view of merchant webhooks given up on: read the dead letters, redeliver one (ops scope)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import MerchantView, OpsKey
from api.lists import CursorWindow
from domain.errors import Conflict, NotFound
from paysaga.store import DeadDeliveryRow

router = APIRouter(prefix="/v1/ops/notifications", tags=["ops"])


class DeadLetter(BaseModel):
    """An event the merchant's endpoint did not take: why, and whether it is being sent again."""

    event_id: str
    sequence: int
    type: str
    status: str  # dead, or pending once redelivered
    attempts: int
    reason: str | None
    redeliveries: int
    created_at: datetime
    updated_at: datetime


class DeadLetterList(BaseModel):
    data: list[DeadLetter]
    has_more: bool


def dead_letter(row: DeadDeliveryRow) -> DeadLetter:
    return DeadLetter(
        event_id=row.event_id,
        sequence=row.sequence,
        type=row.type,
        status=row.status,
        attempts=row.attempts,
        reason=row.last_error,
        redeliveries=row.redeliveries,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/dead-letters", response_model=DeadLetterList)
async def list_dead_letters(
    books: MerchantView,
    _key: OpsKey,
    window: CursorWindow,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DeadLetterList:
    """Webhook deliveries given up on, newest event first (ops scope); the cursors are event
    ids."""
    rows, has_more = await books.list_dead_deliveries(replace(window, limit=limit))
    return DeadLetterList(data=[dead_letter(r) for r in rows], has_more=has_more)


@router.post("/dead-letters/{event_id}/redeliver", status_code=202, response_model=DeadLetter)
async def redeliver(event_id: str, books: MerchantView, key: OpsKey) -> DeadLetter:
    """Send a dead-lettered event again, with a fresh 3-day retry budget (ops scope); audited."""
    row = await books.redeliver(event_id)
    if row is None:
        status = await books.get_delivery_status(event_id)
        if status is None:
            raise NotFound(f"no event {event_id}")
        raise Conflict(
            f"{event_id} is not dead-lettered ({status})", code="dead_letter_redelivering"
        )
    await books.record_ops_action(key.actor, "notification.redeliver", event_id, {})
    return dead_letter(row)
