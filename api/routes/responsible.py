"""Responsible gambling: a customer's deposit and loss limits, and self-exclusion."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, field_validator, model_validator

from api.deps import CurrentKey, MerchantData, MerchantView, OpsKey, ServicesDep
from api.schemas import Currency, Customer, StrictBody, _supported
from domain.errors import InvalidRequest, NotFound
from domain.limits import KINDS, Slots
from domain.money import CURRENCY_EXPONENTS
from paysaga.store import responsible

router = APIRouter(prefix="/v1/customers", tags=["responsible gambling"])

LimitAmount = Field(
    default=None, ge=0, le=10**15, strict=True, description="minor units; null: none"
)


class PeriodLimits(StrictBody):
    """A kind's limits per rolling period: 24 hours, 7 days, 30 days."""

    day: int | None = LimitAmount
    week: int | None = LimitAmount
    month: int | None = LimitAmount


class LimitsSet(StrictBody):
    """The limits the customer asks for: lower apply at once, higher or removed in 24 hours."""

    currency: str = Currency
    deposit: PeriodLimits = Field(default_factory=PeriodLimits)
    loss: PeriodLimits = Field(default_factory=PeriodLimits)

    _currency = field_validator("currency")(_supported)

    def slots(self) -> Slots:
        return {kind: getattr(self, kind).model_dump() for kind in KINDS}


class Limits(BaseModel):
    customer_id: str
    currency: str
    deposit: dict[str, int | None]
    loss: dict[str, int | None]
    pending: dict[str, Any] | None = Field(
        description="raised or removed limits waiting for their cooling-off period:"
        " {deposit|loss: {day|week|month: {amount, effective_at}}}; null when none"
    )


class SelfExclusion(StrictBody):
    """`days` (>= 1) or `permanent: true`; nothing shortens or lifts an exclusion."""

    days: int | None = Field(default=None, ge=1, le=36_500, strict=True)
    permanent: bool = Field(default=False, strict=True)

    @model_validator(mode="after")
    def one_of(self) -> SelfExclusion:
        if (self.days is None) == (not self.permanent):
            raise ValueError("send either days (>= 1) or permanent: true")
        return self


@router.put("/{customer_id}/limits", response_model=Limits)
async def set_limits(
    customer_id: str, body: LimitsSet, svc: ServicesDep, books: MerchantData, key: CurrentKey
) -> Limits:
    """Set the customer's deposit and loss limits in a currency (audited, evented)."""
    view = await responsible.set_limits(
        svc.pool,
        books.merchant_id,
        customer_id,
        body.currency,
        body.slots(),
        (key.actor, key.name),
    )
    if view is None:
        raise NotFound(f"no customer {customer_id}")
    return Limits.model_validate(view.body())


@router.get("/{customer_id}/limits", response_model=Limits)
async def get_limits(
    customer_id: str,
    svc: ServicesDep,
    books: MerchantView,
    currency: Annotated[
        str,
        Query(
            pattern=r"^[A-Z]{3}$",
            json_schema_extra={"enum": sorted(CURRENCY_EXPONENTS)},
            description="uppercase ISO 4217 code of a supported currency",
        ),
    ],
) -> Limits:
    """The customer's limits in force in a currency, and the pending ones."""
    try:
        _supported(currency)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    if await books.get_customer(customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    view = await responsible.get_limits(svc.pool, books.merchant_id, customer_id, currency)
    return Limits.model_validate(view.body())


@router.post("/{customer_id}/self-exclusion", response_model=Customer)
async def self_exclude(
    customer_id: str, body: SelfExclusion, svc: ServicesDep, books: MerchantData, key: CurrentKey
) -> Customer:
    """Exclude the customer from deposits, bets and bonuses for `days` or for good."""
    days = None if body.permanent else body.days
    if not await responsible.self_exclude(svc.pool, books.merchant_id, customer_id, days):
        raise NotFound(f"no customer {customer_id}")
    await books.record_ops_action(
        key.actor,
        "customer.self_exclude",
        customer_id,
        {"days": days, "permanent": body.permanent, "key_name": key.name},
    )
    row = await books.get_customer(customer_id)
    assert row is not None
    return Customer.model_validate(row, from_attributes=True)


class LimitChange(BaseModel):
    currency: str
    actor: str
    key_name: str
    old: dict[str, Any] | None
    new: dict[str, Any]
    changed_at: datetime


class LimitChangeList(BaseModel):
    data: list[LimitChange]


@router.get("/{customer_id}/limits/changes", response_model=LimitChangeList)
async def list_limit_changes(
    customer_id: str, svc: ServicesDep, books: MerchantView, key: OpsKey
) -> LimitChangeList:
    """Every change of the customer's limits: who, when, the limits before and after (ops)."""
    if await books.get_customer(customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    rows = await responsible.limit_changes(svc.pool, books.merchant_id, customer_id)
    return LimitChangeList(data=[LimitChange.model_validate(row) for row in rows])
