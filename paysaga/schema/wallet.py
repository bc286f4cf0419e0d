"""Tables of the game wallet: its calls, bets, tombstones, closed rounds and bonuses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    PrimaryKeyConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from paysaga.schema.columns import money, now_column


class WalletTransaction(SQLModel, table=True):
    """A game call taken or refused under its (merchant, game provider, transaction id): its
    request's hash and answer, for replays; what it moved, and how, for the audit.

    The per-call tables have no foreign keys (migration 0009 says why): the wallet engine writes
    them only for the customers it has just read."""

    __tablename__ = "wallet_transactions"
    __table_args__ = (
        PrimaryKeyConstraint("merchant_id", "game_provider", "transaction_id"),
        CheckConstraint(
            "type IN ('bet', 'win', 'rollback', 'free_spin_win', 'promo_win', 'jackpot_win',"
            " 'tournament_win')",
            name="wallet_transactions_type_check",
        ),
        CheckConstraint("amount >= 0"),
        CheckConstraint("cash_part >= 0"),
        CheckConstraint("bonus_part >= 0"),
        Index(
            "ix_wallet_transactions_ledger",
            "ledger_transaction_id",
            postgresql_where=text("ledger_transaction_id IS NOT NULL"),
        ),
        Index("ix_wallet_transactions_customer", "merchant_id", "customer_id", "seq"),
    )

    merchant_id: str
    game_provider: str
    transaction_id: str
    customer_id: str
    type: str
    request_hash: str
    outcome: str  # "accepted", or the refusal's code
    answer: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    amount: int = money()
    currency: str | None = None
    cash_part: int = money(default=0)
    bonus_part: int = money(default=0)
    bet_transaction_id: str | None = None
    round_id: str | None = None
    ledger_transaction_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )
    # The booking order: GET /v1/wallet/transactions's cursor (an identity column, 0020).
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=now_column())


class WalletBet(SQLModel, table=True):
    """A bet's state: what it took from cash and bonus, its wins, its rollback."""

    __tablename__ = "wallet_bets"
    __table_args__ = (
        PrimaryKeyConstraint("merchant_id", "game_provider", "transaction_id"),
        CheckConstraint("amount > 0"),
        CheckConstraint("cash_part >= 0"),
        CheckConstraint("bonus_part >= 0"),
        CheckConstraint("status IN ('open', 'settled', 'rolled_back', 'refused')"),
        CheckConstraint("won >= 0"),
        # A win is split as its bet was funded: its bonus share may pass the bet's bonus part.
        CheckConstraint("returned_to_bonus >= 0", name="wallet_bets_returned_to_bonus_check"),
        CheckConstraint(
            "(status = 'refused' AND cash_part = 0 AND bonus_part = 0)"
            " OR (status <> 'refused' AND cash_part + bonus_part = amount)",
            name="ck_wallet_bets_parts",
        ),
    )

    merchant_id: str
    game_provider: str
    transaction_id: str
    customer_id: str
    currency: str
    game_id: str
    round_id: str
    amount: int = money()
    cash_part: int = money()
    bonus_part: int = money()
    status: str
    won: int = money(default=0)
    returned_to_bonus: int = money(default=0)
    rollback_transaction_id: str | None = None
    bonus_id: str | None = None  # the bonus active when it was placed
    created_at: datetime = Field(sa_column=now_column())
    updated_at: datetime = Field(sa_column=now_column())


class WalletTombstone(SQLModel, table=True):
    """A rollback that came before its bet: the bet is refused if it ever arrives."""

    __tablename__ = "wallet_tombstones"
    __table_args__ = (PrimaryKeyConstraint("merchant_id", "game_provider", "bet_transaction_id"),)

    merchant_id: str
    game_provider: str
    bet_transaction_id: str
    customer_id: str
    rollback_transaction_id: str
    created_at: datetime = Field(sa_column=now_column())


class WalletRound(SQLModel, table=True):
    """A round a win closed (an open round has no row)."""

    __tablename__ = "wallet_rounds"
    __table_args__ = (
        PrimaryKeyConstraint("merchant_id", "game_provider", "customer_id", "round_id"),
    )

    merchant_id: str
    game_provider: str
    customer_id: str
    round_id: str
    closed_by_transaction_id: str
    closed_at: datetime = Field(sa_column=now_column())


class Bonus(SQLModel, table=True):
    """A bonus; while active, what remains of it is the customer's bonus account's balance."""

    __tablename__ = "bonuses"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'completed', 'expired', 'forfeited')"),
        CheckConstraint("amount > 0"),
        CheckConstraint("wagering_required >= 0"),
        CheckConstraint("wagering_remaining >= 0 AND wagering_remaining <= wagering_required"),
        Index(
            "uq_bonuses_one_active",
            "merchant_id",
            "customer_id",
            "currency",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_bonuses_merchant_customer", "merchant_id", "customer_id"),
        CheckConstraint("max_bet > 0"),
    )

    id: str = Field(primary_key=True)
    merchant_id: str = Field(foreign_key="merchants.id")
    customer_id: str = Field(foreign_key="customers.id")
    currency: str
    status: str
    amount: int = money()
    wagering_required: int = money()
    wagering_remaining: int = money()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_reason: str | None = None
    max_bet: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Field(sa_column=now_column())
    updated_at: datetime = Field(sa_column=now_column())
