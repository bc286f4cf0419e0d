"""Tables of the payments service around the ledger: merchants, customers, payments, events, keys,
the game wallet's calls, bets, tombstones, closed rounds and bonuses, refunds and disputes."""

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


def _now_column() -> Any:
    return Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


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
    created_at: datetime = Field(sa_column=_now_column())


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
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


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
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


class IdempotencyRecord(SQLModel, table=True):
    """The first response to an Idempotency-Key, replayed for the same key and body."""

    __tablename__ = "api_idempotency_keys"
    __table_args__ = (PrimaryKeyConstraint("merchant_id", "key"),)

    merchant_id: str
    key: str
    request_hash: str
    response_status: int | None = Field(default=None, sa_type=Integer)
    response_body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = Field(sa_column=_now_column())


class ProviderWebhookEvent(SQLModel, table=True):
    """A provider webhook already delivered to its saga: the dedupe record of (provider, event id)."""

    __tablename__ = "provider_webhook_events"
    __table_args__ = (PrimaryKeyConstraint("provider", "event_id"),)

    provider: str
    event_id: str
    payment_id: str | None = None
    event_type: str
    received_at: datetime = Field(sa_column=_now_column())


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
    created_at: datetime = Field(sa_column=_now_column())


class ApiKeyRecord(SQLModel, table=True):
    """An API key created by `paysaga keys create`: only its sha256 is kept, never the secret."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True)
    merchant_id: str | None = Field(default=None, foreign_key="merchants.id")  # None: platform
    name: str
    prefix: str  # the first characters of the secret, to tell keys apart in listings
    secret_hash: str = Field(unique=True)
    scopes: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    created_at: datetime = Field(sa_column=_now_column())
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class OpsAuditEntry(SQLModel, table=True):
    """One action of an operator (a review, ...): who did what to which payment."""

    __tablename__ = "ops_audit_log"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    merchant_id: str | None = None  # None: an action of the platform
    at: datetime = Field(sa_column=_now_column())
    actor: str
    action: str
    target: str | None = None
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )


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
    created_at: datetime = Field(sa_column=_now_column())


class WebhookCursor(SQLModel, table=True):
    """A merchant's webhook outbox: the highest sequence done with, the next event's (the
    head's) attempts, next attempt and last error, and the lane's lease."""

    __tablename__ = "webhook_cursors"

    merchant_id: str = Field(primary_key=True, foreign_key="merchants.id", ondelete="CASCADE")
    delivered_through: int = Field(default=0, sa_type=BigInteger)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_now_column())
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str | None = None
    updated_at: datetime = Field(sa_column=_now_column())


class WebhookSkip(SQLModel, table=True):
    """A range of a merchant's events not sent for want of an endpoint (`no_endpoint`)."""

    __tablename__ = "webhook_skips"

    merchant_id: str = Field(primary_key=True, foreign_key="merchants.id", ondelete="CASCADE")
    from_sequence: int = Field(primary_key=True, sa_type=BigInteger)
    through_sequence: int = Field(sa_type=BigInteger)
    reason: str
    created_at: datetime = Field(sa_column=_now_column())


class EventDelivery(SQLModel, table=True):
    """An exception of the webhook outbox: a dead letter (or its redelivery), or an event
    delivered after failed attempts; the cursor (`WebhookCursor`) stands for the rest."""

    __tablename__ = "event_deliveries"

    event_id: str = Field(primary_key=True, foreign_key="events.id", ondelete="CASCADE")
    merchant_id: str = Field(foreign_key="merchants.id")
    sequence: int = Field(sa_type=BigInteger)
    status: str = "pending"  # pending, delivered, dead, no_endpoint
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_now_column())
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str | None = None
    redeliveries: int = 0
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


def _money(*, default: int | None = None) -> Any:
    server_default = None if default is None else str(default)
    return Field(
        default=default,
        sa_column=Column(BigInteger, nullable=False, server_default=server_default),
    )


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
    amount: int = _money()
    currency: str | None = None
    cash_part: int = _money(default=0)
    bonus_part: int = _money(default=0)
    bet_transaction_id: str | None = None
    round_id: str | None = None
    ledger_transaction_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )
    # The booking order: GET /v1/wallet/transactions's cursor (an identity column, 0020).
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=_now_column())


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
    amount: int = _money()
    cash_part: int = _money()
    bonus_part: int = _money()
    status: str
    won: int = _money(default=0)
    returned_to_bonus: int = _money(default=0)
    rollback_transaction_id: str | None = None
    bonus_id: str | None = None  # the bonus active when it was placed
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


class WalletTombstone(SQLModel, table=True):
    """A rollback that came before its bet: the bet is refused if it ever arrives."""

    __tablename__ = "wallet_tombstones"
    __table_args__ = (PrimaryKeyConstraint("merchant_id", "game_provider", "bet_transaction_id"),)

    merchant_id: str
    game_provider: str
    bet_transaction_id: str
    customer_id: str
    rollback_transaction_id: str
    created_at: datetime = Field(sa_column=_now_column())


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
    closed_at: datetime = Field(sa_column=_now_column())


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
    amount: int = _money()
    wagering_required: int = _money()
    wagering_remaining: int = _money()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_reason: str | None = None
    max_bet: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


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
    amount: int = _money()
    currency: str
    status: str
    failure_code: str | None = None
    failure_reason: str | None = None
    reason: str | None = None
    provider: str
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


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
    amount: int = _money()
    currency: str
    fee: int = _money(default=0)
    reason: str
    status: str
    evidence_due_by: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    customer_part: int = _money()
    receivable: int = _money(default=0)
    provider_sequence: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    withdrawn_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


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
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())
