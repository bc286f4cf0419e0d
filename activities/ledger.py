"""Ledger activities: the sagas' thin door to the ledger engine, with its errors made non-retryable.

Every input carries the idempotency key the workflow derived from the payment id and the step, so
a retried attempt (after a crash, a timeout, a lost answer) replays the first result instead of
writing twice. Domain refusals become non-retryable `ApplicationError`s whose `type` is the
ledger error's class name (`InsufficientFunds`, `HoldNotPending`, ...); database trouble propagates
and Temporal retries it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ledger.errors import LedgerError
from ledger.models import AccountKind, Hold, HoldStatus, LineSpec, Split, Transaction

if TYPE_CHECKING:  # the engine (psycopg) stays out of workflow modules that import the inputs
    from ledger.engine import Alongside, Ledger

T = TypeVar("T")


@dataclass
class PostTransactionInput:
    """Post balanced lines (positive credits, negative debits) as one ledger transaction; with a
    `split`, the lines and one amount shared by two accounts (`ledger.models.Split`)."""

    idempotency_key: str
    lines: list[LineSpec]
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    split: Split | None = None


@dataclass
class CustomerDebtInput:
    """A customer's receivable in one currency of a merchant's books."""

    merchant_id: str
    customer_id: str
    currency: str


@dataclass
class HoldFundsInput:
    """Reserve funds on a merchant's account (a customer wallet unless told otherwise)."""

    idempotency_key: str
    merchant_id: str
    owner_id: str
    currency: str
    amount: int
    kind: AccountKind = AccountKind.customer_wallet
    expires_in_seconds: int | None = None


@dataclass
class PostHoldInput:
    """Post a pending hold: the lines debit the held account by at most the hold."""

    idempotency_key: str
    hold_id: int
    lines: list[LineSpec]
    description: str = ""


@dataclass
class VoidHoldInput:
    """Release a pending hold."""

    idempotency_key: str
    hold_id: int


@dataclass
class ReleaseHoldInput:
    """Void the hold made under `hold_key`, if it was ever made and is still pending."""

    idempotency_key: str
    hold_key: str


@dataclass
class ReverseByKeyInput:
    """Reverse the transaction posted under `transaction_key`, if it was ever posted."""

    idempotency_key: str
    transaction_key: str
    description: str = ""


@dataclass
class ReverseTransactionInput:
    """Post the negation of a ledger transaction (once per original)."""

    idempotency_key: str
    transaction_id: int
    description: str = ""


class LedgerActivities:
    """The ledger activities of a worker, sharing one engine (and its connection pool)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @activity.defn(name="ledger.post_transaction")
    async def post_transaction(self, data: PostTransactionInput) -> Transaction:
        """Post a balanced transaction; a replay of the key returns the first one."""
        return await self.post(data)

    async def post(
        self, data: PostTransactionInput, alongside: Alongside | None = None
    ) -> Transaction:
        """`post_transaction`, with the caller's own writes in its database transaction."""
        split = data.split
        if split is not None:  # decided under the accounts' locks
            return await _refusals_final(
                lambda: self._ledger.post_split(
                    data.idempotency_key,
                    data.lines,
                    split,
                    data.description,
                    data.metadata,
                    alongside,
                )
            )
        return await _refusals_final(
            lambda: self._ledger.post_transaction(
                data.idempotency_key, data.lines, data.description, data.metadata, alongside
            )
        )

    @activity.defn(name="ledger.customer_debt")
    async def customer_debt(self, data: CustomerDebtInput) -> int:
        """What the customer owes the merchant in the currency (its receivable, as a positive)."""
        balance = await self._ledger.balance(
            data.merchant_id, data.customer_id, AccountKind.customer_receivable, data.currency
        )
        return -balance.posted

    @activity.defn(name="ledger.hold_funds")
    async def hold_funds(self, data: HoldFundsInput) -> Hold:
        """Reserve funds; InsufficientFunds when the available balance is short."""
        expires_at = (
            datetime.now(UTC) + timedelta(seconds=data.expires_in_seconds)
            if data.expires_in_seconds is not None
            else None
        )
        return await _refusals_final(
            lambda: self._ledger.hold(
                data.idempotency_key,
                data.merchant_id,
                data.owner_id,
                data.kind,
                data.currency,
                data.amount,
                expires_at,
            )
        )

    @activity.defn(name="ledger.post_hold")
    async def post_hold(self, data: PostHoldInput) -> Transaction:
        """Post a pending hold, fully or partially; the remainder is released."""
        return await _refusals_final(
            lambda: self._ledger.post_hold(
                data.idempotency_key, data.hold_id, data.lines, data.description
            )
        )

    @activity.defn(name="ledger.void_hold")
    async def void_hold(self, data: VoidHoldInput) -> Hold:
        """Release a pending hold without moving money."""
        return await _refusals_final(
            lambda: self._ledger.void_hold(data.idempotency_key, data.hold_id)
        )

    @activity.defn(name="ledger.release_hold")
    async def release_hold(self, data: ReleaseHoldInput) -> Hold | None:
        """Compensation of a hold, found by its key: void it if pending; None if never made."""
        hold = await self._ledger.find_hold_by_key(data.hold_key)
        if hold is None or hold.status != HoldStatus.pending:
            return hold  # never made, or already posted, voided or expired
        return await _refusals_final(lambda: self._ledger.void_hold(data.idempotency_key, hold.id))

    @activity.defn(name="ledger.is_posted")
    async def is_posted(self, transaction_key: str) -> bool:
        """Whether a transaction was posted under the key (a reset saga asks what an earlier
        run of it did)."""
        return await self._ledger.find_transaction_by_key(transaction_key) is not None

    @activity.defn(name="ledger.reverse_by_key")
    async def reverse_by_key(self, data: ReverseByKeyInput) -> Transaction | None:
        """Compensation of a posting, found by its key: reverse it once; None if never posted."""
        original = await self._ledger.find_transaction_by_key(data.transaction_key)
        if original is None:
            return None
        return await _refusals_final(
            lambda: self._ledger.reverse(data.idempotency_key, original.id, data.description)
        )

    @activity.defn(name="ledger.reverse_transaction")
    async def reverse_transaction(self, data: ReverseTransactionInput) -> Transaction:
        """Post the reversal of a transaction (compensation); AlreadyReversed the second time."""
        return await _refusals_final(
            lambda: self._ledger.reverse(
                data.idempotency_key, data.transaction_id, data.description
            )
        )


async def _refusals_final(call: Callable[[], Awaitable[T]]) -> T:
    """Run a ledger call; its refusals become non-retryable ApplicationErrors typed by class name."""
    try:
        return await call()
    except LedgerError as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
