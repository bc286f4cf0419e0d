"""Tables of merchants, their customers, payments, refunds, disputes and provider accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from paysaga.schema.columns import money, now_column


class Merchant(SQLModel, table=True):
    """The tenant of everything: customers, payments, ledger accounts, events, keys."""

    __tablename__ = "merchants"

    id: str = Field(primary_key=True)
    name: str
    webhook_url: str | None = None
    webhook_secret: str | None = None
    last_event_sequence: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    created_at: datetime = Field(sa_column=now_column())


class Customer(SQLModel, table=True):
    """A customer of a merchant; its KYC result is recorded by the KYC activity."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id", name="uq_customers_merchant_external_id"),
    )

    id: str = Field(primary_key=True)
    merchant_id: str = Field(foreign_key="merchants.id")
    external_id: str
    # Sealed with the installation's data key, bound to the row (`paysaga.personal_data`);
    # the birth date as YYYY-MM-DD before sealing.
    full_name_sealed: str
    birth_date_sealed: str
    country: str = Field(max_length=2)
    kyc_status: str = "pending"
    kyc_reason: str | None = None
    # `blocked`: the game wallet refuses the customer's bets (wins and rollbacks still land).
    status: str = Field(
        default="active",
        sa_column=Column(
            Text,
            CheckConstraint("status IN ('active', 'blocked')", name="ck_customers_status"),
            nullable=False,
            server_default="active",
        ),
    )
    created_at: datetime = Field(sa_column=now_column())
    updated_at: datetime = Field(sa_column=now_column())


class Payment(SQLModel, table=True):
    """The API's view of a payment; the saga (the Temporal workflow of the same id) writes it."""

    __tablename__ = "payments"
    __table_args__ = (
        Index(
            "ix_payments_merchant_customer_created",
            "merchant_id",
            "customer_id",
            "created_at",
            "id",
        ),
        Index("ix_payments_merchant_created", "merchant_id", "created_at", "id"),
    )

    id: str = Field(primary_key=True)
    merchant_id: str = Field(foreign_key="merchants.id")
    kind: str
    status: str
    customer_id: str = Field(foreign_key="customers.id")
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    provider: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    details: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    # The personal entries of the details (payment method, destination), sealed as JSON.
    personal_details_sealed: str | None = None
    # What the deposit's refunds in flight or succeeded take from it (migration 0010).
    refunded_amount: int = Field(
        default=0,
        sa_column=Column(
            BigInteger,
            CheckConstraint(
                "refunded_amount >= 0 AND refunded_amount <= amount",
                name="ck_payments_refunded_amount",
            ),
            nullable=False,
            server_default="0",
        ),
    )
    created_at: datetime = Field(sa_column=now_column())
    updated_at: datetime = Field(sa_column=now_column())


class Refund(SQLModel, table=True):
    """A refund of (part of) a succeeded deposit; its Refund saga (the workflow of the same id)
    writes it. Its amount is reserved on `payments.refunded_amount` unless it failed."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0"),
        CheckConstraint(
            "status IN ('processing', 'requires_intervention', 'succeeded', 'failed')",
            name="ck_refunds_status",
        ),
        Index("ix_refunds_merchant_payment", "merchant_id", "payment_id", "created_at", "id"),
        Index(
            "ix_refunds_in_flight",
            "payment_id",
            postgresql_where=text("status IN ('processing', 'requires_intervention')"),
        ),
    )

    id: str = Field(primary_key=True)
    merchant_id: str = Field(foreign_key="merchants.id")
    payment_id: str = Field(foreign_key="payments.id")
    customer_id: str = Field(foreign_key="customers.id")
    amount: int = money()
    currency: str
    status: str
    failure_code: str | None = None
    failure_reason: str | None = None
    reason: str | None = None
    provider: str
    created_at: datetime = Field(sa_column=now_column())
    updated_at: datetime = Field(sa_column=now_column())


class Dispute(SQLModel, table=True):
    """A dispute (chargeback) of a deposit; its Dispute saga (the workflow of the same id) writes
    it. `customer_part` is what the withdrawal takes from the customer, fixed once when it is
    recorded: 0 unless the deposit succeeded; for a succeeded one, the disputed amount capped at
    what the deposit gave less its refunds succeeded or in flight and the customer parts of its
    other disputes not won. The merchant bears the rest, and the fee. `receivable` is the part
    of `customer_part` the wallet could not cover (the customer's debt)."""

    __tablename__ = "disputes"
    __table_args__ = (
        UniqueConstraint("provider", "provider_dispute_id", name="uq_disputes_provider_dispute"),
        CheckConstraint("amount > 0"),
        CheckConstraint("fee >= 0"),
        CheckConstraint(
            "status IN ('needs_response', 'under_review', 'requires_intervention', 'won', 'lost')",
            name="ck_disputes_status",
        ),
        CheckConstraint("customer_part >= 0 AND customer_part <= amount"),
        CheckConstraint("receivable >= 0 AND receivable <= customer_part"),
        Index("ix_disputes_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_disputes_payment", "payment_id"),
    )

    id: str = Field(primary_key=True)
    merchant_id: str = Field(foreign_key="merchants.id")
    payment_id: str = Field(foreign_key="payments.id")
    customer_id: str = Field(foreign_key="customers.id")
    provider: str
    provider_dispute_id: str
    amount: int = money()
    currency: str
    fee: int = money(default=0)
    reason: str
    status: str
    evidence_due_by: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    customer_part: int = money()
    receivable: int = money(default=0)
    provider_sequence: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    withdrawn_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(sa_column=now_column())
    updated_at: datetime = Field(sa_column=now_column())


class ProviderAccountRecord(SQLModel, table=True):
    """A merchant's own PSP account (`pa_...`), or its changes to a built-in one (`builtin`, id
    the provider's name); credentials and webhook secret sealed (`paysaga.personal_data`)."""

    __tablename__ = "provider_accounts"
    __table_args__ = (
        PrimaryKeyConstraint("merchant_id", "id"),
        UniqueConstraint("merchant_id", "name"),
        CheckConstraint("builtin OR id LIKE 'pa\\_%'"),
        Index(
            "ux_provider_accounts_own_id", "id", unique=True, postgresql_where=text("NOT builtin")
        ),
    )

    merchant_id: str = Field(foreign_key="merchants.id")
    id: str
    adapter: str
    name: str
    builtin: bool = False
    endpoint: str | None = None
    credentials_sealed: str | None = None
    webhook_secret_sealed: str | None = None
    methods: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'")),
    )
    currencies: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'")),
    )
    priority: int
    enabled: bool = True
    payouts: bool = True
    created_at: datetime = Field(sa_column=now_column())
    updated_at: datetime = Field(sa_column=now_column())
