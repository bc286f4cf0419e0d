"""Tables of merchants' events and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from paysaga.schema.columns import now_column


class Event(SQLModel, table=True):
    """One change of a merchant's object, numbered per merchant with no gap (an outbox row)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("merchant_id", "sequence", name="uq_events_merchant_sequence"),
        Index("ix_events_merchant_type_sequence", "merchant_id", "type", "sequence"),
        Index("ix_events_created", "created_at"),
    )

    id: str = Field(primary_key=True)
    merchant_id: str = Field(foreign_key="merchants.id")
    sequence: int = Field(sa_type=BigInteger)
    type: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(sa_column=now_column())


class EventDelivery(SQLModel, table=True):
    """The delivery of one event to its merchant's webhook endpoint."""

    __tablename__ = "event_deliveries"

    event_id: str = Field(primary_key=True, foreign_key="events.id", ondelete="CASCADE")
    merchant_id: str = Field(foreign_key="merchants.id")
    sequence: int = Field(sa_type=BigInteger)
    status: str = "pending"  # pending, delivered, dead, no_endpoint
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=now_column())
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str | None = None
    redeliveries: int = 0
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(sa_column=now_column())
    updated_at: datetime = Field(sa_column=now_column())
