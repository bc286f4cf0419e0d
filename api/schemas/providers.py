"""Provider accounts: the PSP accounts a merchant's payments are routed over, and their health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.schemas.common import HTTP_URL_PATTERN, StrictBody

AccountName = Field(
    min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$", examples=["stripe-eu"]
)
MethodFamily = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Credentials = Field(
    max_length=20,
    description='the adapter\'s credentials, e.g. `{"secret_key": "sk_test_..."}`: sealed'
    " at rest, never shown again",
)


class ProviderAccountCreate(StrictBody):
    """A merchant's own PSP account: the adapter (an installed `paysaga.providers` entry point),
    its credentials and webhook secret, what it serves (empty: all its adapter serves), and its
    place in routing (1 first)."""

    adapter: str = Field(min_length=1, max_length=64, examples=["stripe"])
    name: str = AccountName
    credentials: dict[
        Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=4096)]
    ] = Credentials
    webhook_secret: str = Field(min_length=16, max_length=255)
    methods: list[MethodFamily] = Field(default_factory=list, max_length=16, examples=[["card"]])
    currencies: list[CurrencyCode] = Field(default_factory=list, max_length=200)
    priority: int = Field(default=10, ge=1, le=1000, strict=True)
    # The PSP's base URL; development only (in production each adapter calls its PSP's own).
    endpoint: str | None = Field(default=None, max_length=2048, pattern=HTTP_URL_PATTERN)


class ProviderAccountUpdate(StrictBody):
    """What changes; omitted: unchanged. `credentials` only on a merchant's own account."""

    enabled: bool | None = Field(default=None, strict=True)
    priority: int | None = Field(default=None, ge=1, le=1000, strict=True)
    methods: list[MethodFamily] | None = Field(default=None, max_length=16)
    currencies: list[CurrencyCode] | None = Field(default=None, max_length=200)
    credentials: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=4096)]] | None
    ) = Field(default=None, max_length=20)


class ProviderHealth(BaseModel):
    """The account's circuit breaker over its last calls (`calls` of them, `failure_rate` of
    them unavailable); `opened_at` while it is open or half-open."""

    state: Literal["closed", "open", "half_open"]
    failure_rate: float
    calls: int
    opened_at: datetime | None = None


class ProviderAccount(BaseModel):
    """A provider account payments are routed over; empty `methods` or `currencies`: all its
    adapter serves. Credentials and webhook secret are never shown."""

    id: str
    adapter: str
    name: str
    methods: list[str]
    currencies: list[str]
    priority: int
    enabled: bool
    builtin: bool
    health: ProviderHealth


class ProviderAccountList(BaseModel):
    data: list[ProviderAccount]
