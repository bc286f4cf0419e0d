"""Ops tools over the API: the audit trail of what operators did (ops scope)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import MerchantView, OpsKey
from api.lists import SequenceWindow

router = APIRouter(prefix="/v1/ops", tags=["ops"])


class OpsAction(BaseModel):
    """One operator action: who (`actor`, a key id or name) did what (`action`) to which payment."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


class OpsActionList(BaseModel):
    data: list[OpsAction]
    has_more: bool


@router.get("/audit-log", response_model=OpsActionList)
async def list_audit_log(
    books: MerchantView,
    _key: OpsKey,
    window: SequenceWindow,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> OpsActionList:
    """Operator actions, newest first; pass the last id as `starting_after` for the next page
    (or the first as `ending_before` for the previous one)."""
    rows, has_more = await books.list_ops_actions(replace(window, limit=limit))
    return OpsActionList(
        data=[OpsAction.model_validate(row, from_attributes=True) for row in rows],
        has_more=has_more,
    )
