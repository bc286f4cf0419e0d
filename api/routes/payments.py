"""Payments of every kind: look one up, list them with filters and cursor pagination."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import CurrentKey, ServicesDep
from api.sagas import payment_from_row
from api.schemas import Payment, PaymentList
from paysaga.errors import NotFound

router = APIRouter(prefix="/v1/payments", tags=["payments"])

Status = Literal["processing", "requires_review", "succeeded", "failed", "canceled"]


@router.get("/{payment_id}", response_model=Payment)
async def get_payment(payment_id: str, svc: ServicesDep, _key: CurrentKey) -> Payment:
    """One payment; its id is also its Temporal workflow id."""
    row = await svc.store.get_payment(payment_id)
    if row is None:
        raise NotFound(f"no payment {payment_id}")
    return payment_from_row(row)


@router.get("", response_model=PaymentList)
async def list_payments(
    svc: ServicesDep,
    _key: CurrentKey,
    customer_id: str | None = None,
    kind: Literal["deposit", "withdrawal", "transfer"] | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: str | None = None,
) -> PaymentList:
    """Payments, newest first; pass the last id as `starting_after` for the next page."""
    if starting_after and await svc.store.get_payment(starting_after) is None:
        raise NotFound(f"no payment {starting_after} to start after", code="cursor_not_found")
    rows, has_more = await svc.store.list_payments(
        customer_id=customer_id,
        kind=kind,
        status=status,
        limit=limit,
        starting_after=starting_after,
    )
    return PaymentList(data=[payment_from_row(r) for r in rows], has_more=has_more)
