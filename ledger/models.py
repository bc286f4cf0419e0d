"""Ledger value types: dataclasses of ints and strs, safe to import inside the workflow sandbox."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from domain.merchants import DEV_MERCHANT_ID
from ledger.errors import InvalidAccountKind, InvalidAmount, InvalidCurrency

_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_AMOUNT = 2**62  # far above any real amount; keeps every sum inside a PostgreSQL bigint


class AccountKind(StrEnum):
    """What an account is for; only a customer's cash wallet and bonus never go below zero."""

    customer_wallet = "customer_wallet"  # the customer's cash: what balances show, withdrawals take
    provider_clearing = "provider_clearing"
    fees = "fees"
    fx_position = "fx_position"
    suspense = "suspense"
    customer_bonus = "customer_bonus"  # the customer's bonus money: played, never withdrawn
    game = "game"  # the merchant's games, one per currency: bets in, wins out
    bonus_funding = "bonus_funding"  # the merchant's bonus budget, one per currency
    promotions = "promotions"  # the merchant's promotions budget: free-spin, jackpot... wins
    # A customer's debt to the merchant (money rule 3): what a chargeback took beyond the wallet.
    # Like provider clearing, money owed *to* the merchant: its balance is negative while the
    # customer owes (-1500 is a debt of 1500) and never above zero.
    customer_receivable = "customer_receivable"
    chargeback_fees = "chargeback_fees"  # the merchant's expense: the providers' dispute fees

    @property
    def allow_negative(self) -> bool:
        """Whether the account's available balance may go below zero."""
        return self not in (AccountKind.customer_wallet, AccountKind.customer_bonus)

    @property
    def never_positive(self) -> bool:
        """Whether the account's balance may never go above zero (a debt owed to the merchant)."""
        return self is AccountKind.customer_receivable


class HoldStatus(StrEnum):
    """The life of a two-phase hold: pending, then exactly one of posted, voided, expired."""

    pending = "pending"
    posted = "posted"
    voided = "voided"
    expired = "expired"


def check_currency(currency: str) -> str:
    """The currency if it is an uppercase three-letter ISO 4217 code, else InvalidCurrency."""
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidCurrency(f"currency must be an uppercase ISO 4217 code, got {currency!r}")
    return currency


def check_amount(amount: int, *, positive: bool = False) -> int:
    """The amount itself if it is a nonzero (or positive) integer in range, else InvalidAmount."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(f"amount must be an integer in minor units, got {amount!r}")
    if amount == 0 or abs(amount) > MAX_AMOUNT or (positive and amount < 0):
        raise InvalidAmount(f"amount must be {'positive' if positive else 'nonzero'}: {amount}")
    return amount


def check_account(merchant_id: str, owner_id: str, kind: AccountKind | str) -> AccountKind:
    """The account kind as an enum if merchant, owner and kind are valid, else InvalidAccountKind."""
    if not isinstance(merchant_id, str) or not merchant_id:
        raise InvalidAccountKind(f"merchant_id must be a non-empty string, got {merchant_id!r}")
    if not isinstance(owner_id, str) or not owner_id:
        raise InvalidAccountKind(f"owner_id must be a non-empty string, got {owner_id!r}")
    try:
        return AccountKind(kind)
    except ValueError as exc:
        raise InvalidAccountKind(f"unknown account kind {kind!r}") from exc


@dataclass(frozen=True)
class LineSpec:
    """One line of a transaction to post: positive credits (raises) the account, negative debits."""

    merchant_id: str
    owner_id: str
    kind: AccountKind
    currency: str
    amount: int


@dataclass(frozen=True)
class Split:
    """One amount shared by two accounts of a merchant, decided inside the posting's lock.

    The `first` account takes as much as it can without crossing zero: a debit (negative
    amount) up to its available balance, a credit (positive) up to what it is below zero; the
    `rest` account takes the remainder. TigerBeetle's balancing transfers, in one line: "debit
    the wallet up to what it holds, the shortfall to the receivable" or "repay the debt first,
    the rest to the wallet", atomic whatever else posts meanwhile.
    """

    merchant_id: str
    currency: str
    amount: int
    first_owner_id: str
    first_kind: AccountKind
    rest_owner_id: str
    rest_kind: AccountKind


@dataclass(frozen=True)
class Account:
    """A ledger account, identified by (merchant_id, owner_id, kind, currency)."""

    id: int
    merchant_id: str
    owner_id: str
    kind: AccountKind
    currency: str
    allow_negative: bool


@dataclass(frozen=True)
class Balance:
    """An account's balances in minor units: available = posted - held."""

    posted: int
    held: int
    available: int


@dataclass(frozen=True)
class CurrencyBalance:
    """An owner's balance in one currency (of one merchant's books)."""

    currency: str
    posted: int
    held: int
    available: int


@dataclass(frozen=True)
class Entry:
    """One immutable entry: an amount on an account and that account's posted balance after it."""

    account_id: int
    owner_id: str
    kind: AccountKind
    currency: str
    amount: int
    balance_after: int
    # Keyword-only with a default: results recorded before merchants existed (saga histories,
    # stored idempotent results) lack it, and were all the development merchant's.
    merchant_id: str = field(default=DEV_MERCHANT_ID, kw_only=True)


@dataclass(frozen=True)
class Transaction:
    """A posted ledger transaction: its entries sum to zero per currency."""

    id: int
    idempotency_key: str
    entries: list[Entry]
    reverses_transaction_id: int | None = None
    created_at: str = ""
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the form stored as an idempotent result)."""
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "entries": [
                {
                    "account_id": e.account_id,
                    "merchant_id": e.merchant_id,
                    "owner_id": e.owner_id,
                    "kind": str(e.kind),
                    "currency": e.currency,
                    "amount": e.amount,
                    "balance_after": e.balance_after,
                }
                for e in self.entries
            ],
            "reverses_transaction_id": self.reverses_transaction_id,
            "created_at": self.created_at,
            "description": self.description,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transaction:
        """The inverse of `to_dict`."""
        return cls(
            id=data["id"],
            idempotency_key=data["idempotency_key"],
            entries=[
                Entry(
                    account_id=e["account_id"],
                    owner_id=e["owner_id"],
                    kind=AccountKind(e["kind"]),
                    currency=e["currency"],
                    amount=e["amount"],
                    balance_after=e["balance_after"],
                    merchant_id=e.get("merchant_id", DEV_MERCHANT_ID),
                )
                for e in data["entries"]
            ],
            reverses_transaction_id=data.get("reverses_transaction_id"),
            created_at=data.get("created_at", ""),
            description=data.get("description", ""),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Hold:
    """A two-phase reservation of funds on one account."""

    id: int
    idempotency_key: str
    owner_id: str
    kind: AccountKind
    currency: str
    amount: int
    status: HoldStatus
    expires_at: str | None = None
    posted_amount: int = 0
    posting_transaction_id: int | None = None
    # A default for the same reason as Entry.merchant_id: holds recorded before merchants.
    merchant_id: str = field(default=DEV_MERCHANT_ID, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the form stored as an idempotent result)."""
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "merchant_id": self.merchant_id,
            "owner_id": self.owner_id,
            "kind": str(self.kind),
            "currency": self.currency,
            "amount": self.amount,
            "status": str(self.status),
            "expires_at": self.expires_at,
            "posted_amount": self.posted_amount,
            "posting_transaction_id": self.posting_transaction_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hold:
        """The inverse of `to_dict`."""
        return cls(
            id=data["id"],
            idempotency_key=data["idempotency_key"],
            owner_id=data["owner_id"],
            kind=AccountKind(data["kind"]),
            currency=data["currency"],
            amount=data["amount"],
            status=HoldStatus(data["status"]),
            expires_at=data.get("expires_at"),
            posted_amount=data.get("posted_amount", 0),
            posting_transaction_id=data.get("posting_transaction_id"),
            merchant_id=data.get("merchant_id", DEV_MERCHANT_ID),
        )


@dataclass(frozen=True)
class AuditQuery:
    """A check the audit runs in its one snapshot: every row the query finds is a violation.

    How a user of the ledger adds a check of what the ledger cannot know (e.g. the service's
    FX quotes) to the same snapshot, without the ledger knowing its tables.
    """

    name: str
    sql: str
    found: str  # what a row is, for the detail: "conversions (transaction, quote)"


@dataclass(frozen=True)
class AuditCheck:
    """One check of the audit; `detail` says what was found."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class AuditReport:
    """The audit's result: every check, passed or not."""

    checks: list[AuditCheck]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[AuditCheck]:
        """The checks that failed."""
        return [check for check in self.checks if not check.passed]

    def format(self) -> str:
        """One line per check and a summary line, for a terminal."""
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [
            f"{c.name:<{width}}  {'ok' if c.passed else 'FAIL'}  {c.detail}".rstrip()
            for c in self.checks
        ]
        failed = len(self.failures)
        summary = (
            f"ledger audit: {len(self.checks)} checks, all passed"
            if failed == 0
            else f"ledger audit: {failed} of {len(self.checks)} checks FAILED"
        )
        return "\n".join([*lines, summary])
