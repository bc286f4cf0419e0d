"""Provider accounts as an operator sees them: today the installation's sandbox providers, each
with its circuit breaker's health (read-only; accounts per merchant come with issue 23, item 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import OpsKey, ServicesDep
from paysaga.store.provider_health import ProviderBreakers, breaker_policy
from providers.registry import PROVIDER_NAMES

router = APIRouter(prefix="/v1/providers", tags=["providers"])


class ProviderHealthOut(BaseModel):
    """The account's circuit breaker over its last calls (`calls` of them, `failure_rate`
    unavailable); `opened_at` while it is open or half-open."""

    state: Literal["closed", "open", "half_open"]
    failure_rate: float
    calls: int
    opened_at: datetime | None


class ProviderAccountOut(BaseModel):
    """A provider account; empty `methods` and `currencies` mean it serves them all."""

    id: str
    adapter: str
    name: str
    methods: list[str]
    currencies: list[str]
    priority: int
    enabled: bool
    health: ProviderHealthOut


class ProviderAccountList(BaseModel):
    data: list[ProviderAccountOut]


@router.get("", response_model=ProviderAccountList)
async def list_providers(svc: ServicesDep, _key: OpsKey) -> ProviderAccountList:
    """The provider accounts payments are routed over, in priority order, with their health
    (ops scope)."""
    breakers = ProviderBreakers(svc.pool, breaker_policy(svc.settings))
    shown = await breakers.health_of(list(PROVIDER_NAMES))
    return ProviderAccountList(
        data=[
            ProviderAccountOut(
                id=name,
                adapter="sandbox",
                name=name,
                methods=[],
                currencies=[],
                priority=priority,
                enabled=True,
                health=ProviderHealthOut(
                    state=shown[name].state.value,
                    failure_rate=shown[name].failure_rate,
                    calls=shown[name].calls,
                    opened_at=shown[name].opened_at,
                ),
            )
            for priority, name in enumerate(PROVIDER_NAMES, start=1)
        ]
    )
