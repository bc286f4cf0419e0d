"""Ops view of reconciliation: the mismatches found between providers' books and the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import BIGINT_MAX, MerchantView, OpsKey, ServicesDep
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
    provider: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> MismatchList:
    """Mismatches on the merchant's payments recorded by reconciliation runs, newest first
    (ops scope)."""
    rows, has_more = await ReconciliationBooks(svc.pool).list_mismatches(
        books.merchant_id, provider, limit, starting_after
    )
    return MismatchList(
        data=[MismatchOut.model_validate(r, from_attributes=True) for r in rows], has_more=has_more
    )
