"""Ops view of reconciliation: the mismatches found between providers' books and the ledger."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import MerchantView, OpsKey, ServicesDep
from api.lists import SequenceWindow
from paysaga.reconciliation import ReconciliationBooks

router = APIRouter(prefix="/v1/ops/reconciliation", tags=["ops"])


class MismatchOut(BaseModel):
    id: int
    provider: str
    reference: str
    currency: str
    provider_amount: int
    ledger_amount: int
    found_at: datetime
    run_key: str


class MismatchList(BaseModel):
    data: list[MismatchOut]
    has_more: bool


@router.get("/mismatches", response_model=MismatchList)
async def list_mismatches(
    svc: ServicesDep,
    books: MerchantView,
    _key: OpsKey,
    window: SequenceWindow,
    provider: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> MismatchList:
    """Mismatches on the merchant's payments recorded by reconciliation runs, newest first
    (ops scope)."""
    rows, has_more = await ReconciliationBooks(svc.pool).list_mismatches(
        books.merchant_id, provider, replace(window, limit=limit)
    )
    return MismatchList(
        data=[MismatchOut.model_validate(r, from_attributes=True) for r in rows], has_more=has_more
    )
