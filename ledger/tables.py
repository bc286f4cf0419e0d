"""The ledger's tables as SQLModel metadata, for migrations (the engine writes with psycopg)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

NOW = text("now()")


def _id() -> Any:
    return Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=False), primary_key=True),
    )


def _created_at() -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=NOW),
    )


class LedgerAccount(SQLModel, table=True):
    """An account of one merchant: stored balances are the sum of its entries and pending holds."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint(
            "merchant_id",
            "owner_id",
            "kind",
            "currency",
            name="uq_ledger_accounts_merchant_owner_kind_currency",
        ),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_ledger_accounts_currency"),
        CheckConstraint("held >= 0", name="ck_ledger_accounts_held"),
        CheckConstraint(
            "allow_negative OR posted - held >= 0", name="ck_ledger_accounts_non_negative"
        ),
    )

    id: int | None = _id()
    # The tenant's table is the service's (paysaga.schema); migration 0008 added the reference.
    merchant_id: str = Field(sa_column=Column(Text, ForeignKey("merchants.id"), nullable=False))
    owner_id: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    allow_negative: bool = Field(nullable=False)
    posted: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    held: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    version: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    created_at: datetime | None = _created_at()


class LedgerTransaction(SQLModel, table=True):
    """A posted transaction (append-only: the database refuses UPDATE, DELETE and TRUNCATE)."""

    __tablename__ = "ledger_transactions"

    id: int | None = _id()
    idempotency_key: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    description: str = Field(
        default="", sa_column=Column(Text, nullable=False, server_default=text("''"))
    )
    # "metadata" is reserved on SQLModel classes, so the attribute has another name.
    meta: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    reverses_transaction_id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger, ForeignKey("ledger_transactions.id"), unique=True, nullable=True
        ),
    )
    created_at: datetime | None = _created_at()


class LedgerEntry(SQLModel, table=True):
    """One immutable entry (append-only: the database refuses UPDATE, DELETE and TRUNCATE)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
        Index("ix_ledger_entries_transaction_id", "transaction_id"),
        CheckConstraint("amount <> 0", name="ck_ledger_entries_amount"),
    )

    id: int | None = _id()
    transaction_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("ledger_transactions.id"), nullable=False)
    )
    account_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("ledger_accounts.id"), nullable=False)
    )
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    balance_after: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime | None = _created_at()


class LedgerHold(SQLModel, table=True):
    """A two-phase hold: pending, then exactly one of posted, voided or expired."""

    __tablename__ = "ledger_holds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_ledger_holds_amount"),
        CheckConstraint(
            "status IN ('pending', 'posted', 'voided', 'expired')", name="ck_ledger_holds_status"
        ),
        CheckConstraint(
            "posted_amount >= 0 AND posted_amount <= amount", name="ck_ledger_holds_posted_amount"
        ),
        Index(
            "ix_ledger_holds_pending_expiry",
            "expires_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_ledger_holds_account_id", "account_id"),
    )

    id: int | None = _id()
    idempotency_key: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    account_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("ledger_accounts.id"), nullable=False)
    )
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(
        default="pending",
        sa_column=Column(Text, nullable=False, server_default=text("'pending'")),
    )
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    posted_amount: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    posting_transaction_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, ForeignKey("ledger_transactions.id"), nullable=True),
    )
    created_at: datetime | None = _created_at()
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class LedgerIdempotency(SQLModel, table=True):
    """The first result of every idempotent write, keyed by the caller's idempotency key."""

    __tablename__ = "ledger_idempotency"

    key: str = Field(sa_column=Column(Text, primary_key=True))
    operation: str = Field(sa_column=Column(Text, nullable=False))
    request_hash: str = Field(sa_column=Column(Text, nullable=False))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime | None = _created_at()


APPEND_ONLY_TABLES = ("ledger_transactions", "ledger_entries")
