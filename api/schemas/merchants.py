"""The installation's own objects: health, merchants and their API keys, the event feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import HTTP_URL_PATTERN, StrictBody, _usable_url

ScopeName = Literal["payments", "ops", "platform", "codec"]


class Probe(BaseModel):
    status: Literal["ok", "unavailable"]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    temporal: str


WEEK_SECONDS = 7 * 24 * 3600


class MerchantCreate(StrictBody):
    name: str = Field(min_length=1, max_length=200)


class ComplianceSettings(StrictBody):
    """The merchant's AML monitoring rules, each off (0) by default; thresholds in EUR."""

    min_wagering_before_withdrawal: float = Field(
        default=0,
        ge=0,
        le=1000,
        strict=True,
        allow_inf_nan=False,
        description="a withdrawal while the customer's settled bets since their last withdrawal"
        " are below this multiple of their deposits since then goes to review (`low_wagering`)",
    )
    structuring_deposits: int = Field(
        default=0,
        ge=0,
        le=1000,
        strict=True,
        description="this many deposits within 24 hours, each within 10 % under the review"
        " threshold, send the next withdrawal to review (`structuring`)",
    )
    edd_threshold_eur: int = Field(
        default=0,
        ge=0,
        le=10**12,
        strict=True,
        description="deposits of 30 days above this (EUR) need enhanced due diligence before"
        " the next withdrawal (`edd_required`)",
    )


class Merchant(BaseModel):
    """A merchant: the owner of its customers, payments, events and keys."""

    id: str
    name: str
    webhook_url: str | None = None  # the secret is never shown
    created_at: datetime
    # While a rotated-out secret still signs beside the new one: when it stops.
    previous_webhook_secret_expires_at: datetime | None = None
    compliance: ComplianceSettings = Field(default_factory=ComplianceSettings)


class MerchantUpdate(StrictBody):
    """Where the merchant's webhooks go and the secret they are signed with; omitted: unchanged,
    null: removed (no URL: no webhooks, the events stay in the feed)."""

    webhook_url: str | None = Field(default=None, max_length=2048, pattern=HTTP_URL_PATTERN)
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=255)
    # How long, from now, the secret being replaced keeps signing beside the new one (default
    # 24 h; 0: not at all, e.g. when it leaked). Without a new secret: re-times the running
    # grace (0 ends it once the receivers have rolled over).
    webhook_secret_grace_seconds: float | None = Field(
        default=None, ge=0, le=WEEK_SECONDS, strict=True, allow_inf_nan=False
    )
    compliance: ComplianceSettings | None = None  # the AML monitoring rules; omitted: unchanged

    @field_validator("webhook_url")
    @classmethod
    def url_parses(cls, url: str | None) -> str | None:
        return _usable_url(url, "webhook_url")


class ApiKeyCreate(StrictBody):
    """`payments` moves money and reads; `ops` reads and takes the operator's actions (reviews,
    resolutions, disputes, blocks, the merchant's settings) but moves no money on its own."""

    scopes: list[Literal["payments", "ops"]] = Field(min_length=1, max_length=2)
    name: str = Field(default="", max_length=200)


class ApiKeyCreated(BaseModel):
    """A new key; `secret` is shown in this answer only."""

    id: str
    merchant_id: str
    secret: str
    scopes: list[ScopeName]


class ApiKeyView(BaseModel):
    """A key as listed: never its secret, only the secret's first characters (`prefix`)."""

    id: str
    merchant_id: str
    name: str
    prefix: str
    scopes: list[ScopeName]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyList(BaseModel):
    data: list[ApiKeyView]
    has_more: bool


class Event(BaseModel):
    """A change of one of the merchant's objects; `sequence` numbers them from 1 with no gap."""

    id: str
    sequence: int
    type: str
    created: int  # Unix seconds
    data: dict[str, Any]


class EventList(BaseModel):
    data: list[Event]
    has_more: bool
