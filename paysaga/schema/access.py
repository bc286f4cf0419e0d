"""Tables of what callers send and use: idempotency records, webhooks received, FX quotes, API
keys, the operators' audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    PrimaryKeyConstraint,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from paysaga.schema.columns import now_column


class IdempotencyRecord(SQLModel, table=True):
    """The first response to an Idempotency-Key, replayed for the same key and body."""

    __tablename__ = "api_idempotency_keys"
    __table_args__ = (PrimaryKeyConstraint("merchant_id", "key"),)

    merchant_id: str
    key: str
    request_hash: str
    response_status: int | None = Field(default=None, sa_type=Integer)
    response_body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = Field(sa_column=now_column())


class ProviderWebhookEvent(SQLModel, table=True):
    """A provider webhook already delivered to its saga: the dedupe record of (provider, event id)."""

    __tablename__ = "provider_webhook_events"
    __table_args__ = (PrimaryKeyConstraint("provider", "event_id"),)

    provider: str
    event_id: str
    payment_id: str | None = None
    event_type: str
    received_at: datetime = Field(sa_column=now_column())


class FxQuote(SQLModel, table=True):
    """A locked FX price for one customer, used by at most one transfer."""

    __tablename__ = "fx_quotes"

    id: str = Field(primary_key=True)
    merchant_id: str = Field(foreign_key="merchants.id")
    customer_id: str = Field(foreign_key="customers.id")
    source_currency: str = Field(max_length=3)
    target_currency: str = Field(max_length=3)
    source_amount: int = Field(sa_type=BigInteger)
    fee: int = Field(sa_type=BigInteger)
    target_amount: int = Field(sa_type=BigInteger)
    rate: str
    mid_rate: str
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_by_payment_id: str | None = Field(default=None, unique=True)
    created_at: datetime = Field(sa_column=now_column())


class ApiKeyRecord(SQLModel, table=True):
    """An API key created by `paysaga keys create`: only its sha256 is kept, never the secret."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True)
    merchant_id: str | None = Field(default=None, foreign_key="merchants.id")  # None: platform
    name: str
    prefix: str  # the first characters of the secret, to tell keys apart in listings
    secret_hash: str = Field(unique=True)
    scopes: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    created_at: datetime = Field(sa_column=now_column())
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class OpsAuditEntry(SQLModel, table=True):
    """One action of an operator (a review, ...): who did what to which payment."""

    __tablename__ = "ops_audit_log"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    merchant_id: str | None = None  # None: an action of the platform
    at: datetime = Field(sa_column=now_column())
    actor: str
    action: str
    target: str | None = None
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
