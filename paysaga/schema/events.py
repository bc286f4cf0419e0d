"""Tables of merchants' events and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from paysaga.schema.columns import now_column


class Event(SQLModel, table=True):
    """One change of a merchant's object, numbered per merchant with no gap after its commit by
    the sequencer (null until then; `written_order` is the order it numbers them in)."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "uq_events_merchant_numbered",
            "merchant_id",
            "sequence",
            unique=True,
            postgresql_where=text("sequence IS NOT NULL"),
        ),
        Index(
            "ix_events_merchant_type_numbered",
            "merchant_id",
            "type",
            "sequence",
            postgresql_where=text("sequence IS NOT NULL"),
        ),
        Index(
            "ix_events_unsequenced",
            "merchant_id",
            "written_order",
            postgresql_where=text("sequence IS NULL"),
        ),
        Index("ix_events_created", "created_at"),
    )

    id: str = Field(primary_key=True)
    merchant_id: str = Field(foreign_key="merchants.id")
    sequence: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    written_order: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    type: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(sa_column=now_column())


class WebhookCursor(SQLModel, table=True):
    """A merchant's webhook outbox: the highest sequence done with, the next event's (the
    head's) attempts, next attempt and last error, and the lane's lease."""

    __tablename__ = "webhook_cursors"

    merchant_id: str = Field(primary_key=True, foreign_key="merchants.id", ondelete="CASCADE")
    delivered_through: int = Field(default=0, sa_type=BigInteger)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=now_column())
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str | None = None
    updated_at: datetime = Field(sa_column=now_column())


class WebhookSkip(SQLModel, table=True):
    """A range of a merchant's events not sent for want of an endpoint (`no_endpoint`)."""

    __tablename__ = "webhook_skips"

    merchant_id: str = Field(primary_key=True, foreign_key="merchants.id", ondelete="CASCADE")
    from_sequence: int = Field(primary_key=True, sa_type=BigInteger)
    through_sequence: int = Field(sa_type=BigInteger)
    reason: str
    created_at: datetime = Field(sa_column=now_column())


class EventDelivery(SQLModel, table=True):
    """An exception of the webhook outbox: a dead letter (or its redelivery), or an event
    delivered after failed attempts; the cursor (`WebhookCursor`) stands for the rest."""

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
