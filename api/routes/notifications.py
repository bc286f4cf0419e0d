"""Ops view of merchant notifications given up on: read the dead-letter list, redeliver one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.deps import OpsKey, ServicesDep
from domain.errors import Conflict, NotFound, ServiceUnavailable
from domain.payments import MerchantEvent
from paysaga.notifications import DeadLetters

router = APIRouter(prefix="/v1/ops/notifications", tags=["ops"])


class DeadLetter(BaseModel):
    """An event the merchant did not take: why, and whether a redelivery is under way."""

    event_id: str
    payment_id: str
    payment_status: str
    failure_code: str | None
    reason: str
    state: str  # dead, or redelivering
    redeliveries: int
    created_at: datetime
    updated_at: datetime


class DeadLetterList(BaseModel):
    data: list[DeadLetter]
    has_more: bool


@router.get("/dead-letters", response_model=DeadLetterList)
async def list_dead_letters(
    svc: ServicesDep,
    _key: OpsKey,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(max_length=128)] = None,
) -> DeadLetterList:
    """Events given up on, newest first (ops scope)."""
    rows, has_more = await DeadLetters(svc.pool).list(limit, starting_after)
    return DeadLetterList(
        data=[DeadLetter.model_validate(r, from_attributes=True) for r in rows], has_more=has_more
    )


@router.post("/dead-letters/{event_id}/redeliver", status_code=202, response_model=DeadLetter)
async def redeliver(event_id: str, svc: ServicesDep, key: OpsKey) -> DeadLetter:
    """Send a dead-lettered event again (ops scope); it leaves the list once the merchant takes it."""
    letters = DeadLetters(svc.pool)
    row = await letters.start_redelivery(event_id)
    if row is None:
        if await letters.get(event_id) is None:
            raise NotFound(f"no dead-lettered event {event_id}")
        raise Conflict(f"{event_id} is being redelivered", code="dead_letter_redelivering")
    event = MerchantEvent(event_id, row.payment_id, row.payment_status, row.failure_code)
    try:
        await svc.temporal.start_workflow(
            "MerchantRedelivery",
            event,
            id=f"{event_id}:redeliver:{row.redeliveries}",
            task_queue=svc.settings.task_queue,
        )
    except WorkflowAlreadyStartedError:
        pass  # this very redelivery was started by an earlier attempt of this request
    except RPCError as exc:
        await letters.record(
            event_id, event.payment_id, event.status, event.failure_code, row.reason
        )
        raise ServiceUnavailable(f"could not start the redelivery: {exc}") from exc
    await svc.store.record_ops_action(key.actor, "notification.redeliver", event_id, {})
    return DeadLetter.model_validate(row, from_attributes=True)
