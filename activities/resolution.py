"""What an operator's resolution of a payment without its saga starts from: the row and the ledger.

When a payment's (or refund's) saga workflow is closed (terminated, reset away, timed out), the
`PaymentResolution` workflow books the operator's decision in its place. It reads here what the
saga would have known: the row, and what the ledger holds under the saga's idempotency keys; it
then books through the sagas' own ledger, provider and status activities, under the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.refunds import REFUND_ID_PREFIX, SEARCH_KIND, refund_key_prefix
from ledger.models import AccountKind, Hold
from paysaga.store import Store

if TYPE_CHECKING:  # the engine (psycopg) stays out of the workflow module that imports the inputs
    from ledger.engine import Ledger

# The saga's ledger steps whose postings a resolution looks for, by key suffix.
POSTING_STEPS = ("credit", "post", "convert", "settle")
UNKNOWN_PAYMENT = "UnknownPayment"


@dataclass
class FactsInput:
    payment_id: str  # a payment's id, or a refund's (`ref_...`)


@dataclass
class TransitLeg:
    owner_id: str  # the house's suspense account
    currency: str
    amount: int


@dataclass
class PaymentFacts:
    """A payment or refund as its saga left it: the row, the hold, the postings made."""

    kind: str  # deposit, withdrawal, transfer, refund
    status: str
    merchant_id: str
    customer_id: str
    amount: int
    currency: str
    provider: str | None
    key_prefix: str  # what the saga's ledger and provider keys start with
    refunded_payment_id: str | None = None  # a refund's deposit
    # A transfer converted to be paid out: the target amount waiting in transit (the conversion's
    # suspense leg), to be settled to the provider that paid it out. None: to a wallet.
    in_transit: TransitLeg | None = None
    hold: Hold | None = None
    posted: list[str] = field(default_factory=list)  # which POSTING_STEPS the ledger holds


class ResolutionActivities:
    def __init__(self, store: Store, ledger: Ledger) -> None:
        self._store = store
        self._ledger = ledger

    @activity.defn(name="resolution.facts")
    async def facts(self, query: FactsInput) -> PaymentFacts:
        """The row and the ledger as they are now, found by the saga's keys."""
        facts = await self._row(query.payment_id)
        facts.hold = await self._ledger.find_hold_by_key(f"{facts.key_prefix}:hold")
        for step in POSTING_STEPS:
            posting = await self._ledger.find_transaction_by_key(f"{facts.key_prefix}:{step}")
            if posting is None:
                continue
            facts.posted.append(step)
            if step == "convert":
                facts.in_transit = next(
                    (
                        TransitLeg(entry.owner_id, entry.currency, entry.amount)
                        for entry in posting.entries
                        if entry.kind == AccountKind.suspense and entry.amount > 0
                    ),
                    None,
                )
        return facts

    async def _row(self, payment_id: str) -> PaymentFacts:
        if payment_id.startswith(REFUND_ID_PREFIX):
            refund = await self._store.get_refund(payment_id)
            if refund is None:
                raise ApplicationError(
                    f"no refund {payment_id}", type=UNKNOWN_PAYMENT, non_retryable=True
                )
            return PaymentFacts(
                SEARCH_KIND,
                refund.status,
                refund.merchant_id,
                refund.customer_id,
                refund.amount,
                refund.currency,
                refund.provider,
                refund_key_prefix(refund.payment_id, refund.id),
                refunded_payment_id=refund.payment_id,
            )
        row = await self._store.get_payment(payment_id)
        if row is None:
            raise ApplicationError(
                f"no payment {payment_id}", type=UNKNOWN_PAYMENT, non_retryable=True
            )
        return PaymentFacts(
            row.kind,
            row.status,
            row.merchant_id,
            row.customer_id,
            row.amount,
            row.currency,
            row.provider,
            row.id,
        )
