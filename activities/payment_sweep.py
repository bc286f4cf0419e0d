"""The orphan sweep activity: payments (and refunds) whose saga never started end `failed`
(`saga_not_started`).

Nothing was sent to a provider for such a payment, so nothing is undone: the row is failed with
reason "the payment's workflow never started". Before that, the sweep takes the payment's workflow
id by starting a `SagaNotStarted` workflow under it (the API starts sagas with
`REJECT_DUPLICATE`): a client's late retry then can no longer start the saga behind a failed
payment, and an operator who pastes the payment id in the Temporal UI finds why it failed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.payments import count_finished_payment
from domain import search_attributes as sa
from domain.payments import FailureCode, MerchantEvent, PaymentStatus
from domain.refunds import SEARCH_KIND as REFUND_KIND
from domain.refunds import RefundStatus, refund_key_prefix
from paysaga.payment_sweep import SweepBooks
from paysaga.store import PaymentRow, RefundRow, Store

SAGA_NOT_STARTED = FailureCode.SAGA_NOT_STARTED.value  # nothing was ever sent to a provider
NOT_STARTED_REASON = "the payment's workflow never started"
REFUND_NOT_STARTED_REASON = "the refund's workflow never started"
# Workflow names, as registered by their modules (workflows/payment_sweep.py, the notification).
SAGA_NOT_STARTED_WORKFLOW = "SagaNotStarted"
MERCHANT_NOTIFICATION_WORKFLOW = "MerchantNotification"
PAGE = 200


@dataclass
class FailOrphansInput:
    grace_seconds: float  # a payment younger than this may still be having its saga started


@dataclass
class FailOrphansResult:
    checked: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass
class SagaNotStartedInput:
    payment_id: str
    reason: str = NOT_STARTED_REASON


@dataclass(frozen=True)
class Orphan:
    """A payment or refund whose saga may never have started: what its workflow id shows."""

    id: str
    merchant_id: str
    kind: str
    customer_id: str
    currency: str
    amount: int
    key_prefix: str  # what its ledger keys start with

    @classmethod
    def of_payment(cls, row: PaymentRow) -> Orphan:
        return cls(
            row.id, row.merchant_id, row.kind, row.customer_id, row.currency, row.amount, row.id
        )

    @classmethod
    def of_refund(cls, row: RefundRow) -> Orphan:
        prefix = refund_key_prefix(row.payment_id, row.id)
        return cls(
            row.id, row.merchant_id, REFUND_KIND, row.customer_id, row.currency, row.amount, prefix
        )


class PaymentSweepActivities:
    def __init__(self, store: Store, books: SweepBooks, merchant_webhooks: bool) -> None:
        self._store = store
        self._books = books
        self._merchant_webhooks = merchant_webhooks

    @activity.defn(name="payment_sweep.fail_orphans")
    async def fail_orphans(self, sweep: FailOrphansInput) -> FailOrphansResult:
        """Fail every payment and refund past the grace period whose saga never started;
        idempotent."""
        result = FailOrphansResult()
        after = ""
        while True:
            rows = await self._books.untouched_processing_payments(sweep.grace_seconds, after, PAGE)
            for row in rows:
                if await self._take_workflow_id(Orphan.of_payment(row)) and await self._fail(row):
                    result.failed.append(row.id)
            result.checked += len(rows)
            activity.heartbeat(result.checked)
            if len(rows) < PAGE:
                break
            after = rows[-1].id
        after = ""
        while True:
            refunds = await self._books.untouched_processing_refunds(
                sweep.grace_seconds, after, PAGE
            )
            for refund in refunds:
                orphan = Orphan.of_refund(refund)
                if await self._take_workflow_id(orphan) and await self._fail_refund(refund):
                    result.failed.append(refund.id)
            result.checked += len(refunds)
            activity.heartbeat(result.checked)
            if len(refunds) < PAGE:
                return result
            after = refunds[-1].id

    async def _take_workflow_id(self, payment: Orphan) -> bool:
        """True when no saga ever ran for the payment and the sweep now holds its workflow id."""
        client = activity.client()
        try:
            description = await client.get_workflow_handle(payment.id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        else:  # its saga runs or ran, or an earlier attempt of this sweep took the id
            return description.workflow_type == SAGA_NOT_STARTED_WORKFLOW
        if await self._books.ledger_names(payment.key_prefix):
            activity.logger.warning(
                "payment %s has no workflow but has ledger records: left for an operator",
                payment.id,
            )
            return False
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(sa.MERCHANT_ID, payment.merchant_id),
                SearchAttributePair(sa.PAYMENT_KIND, payment.kind),
                SearchAttributePair(sa.PAYMENT_STATUS, PaymentStatus.FAILED.value),
                SearchAttributePair(sa.CUSTOMER_ID, payment.customer_id),
                SearchAttributePair(sa.CURRENCY, payment.currency),
                SearchAttributePair(sa.AMOUNT_MINOR, payment.amount),
            ]
        )
        try:
            await client.start_workflow(
                SAGA_NOT_STARTED_WORKFLOW,
                SagaNotStartedInput(payment.id),
                id=payment.id,
                task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=attributes,
                static_summary=f"{payment.kind} failed: {NOT_STARTED_REASON}",
            )
        except WorkflowAlreadyStartedError:
            return False  # a client's retry started its saga just now: the saga owns it
        return True

    async def _fail_refund(self, refund: RefundRow) -> bool:
        """Fail the refund as its saga would (its amount refundable again, event refund.failed);
        False if done before."""
        row = await self._store.update_refund(
            refund.id,
            RefundStatus.FAILED.value,
            SAGA_NOT_STARTED,
            REFUND_NOT_STARTED_REASON,
        )
        if row is None:
            return False  # already terminal: an earlier attempt of this sweep failed it
        activity.logger.info("refund %s is failed (%s)", row.id, SAGA_NOT_STARTED)
        return True

    async def _fail(self, payment: PaymentRow) -> bool:
        """Announce the failure to the merchant, then write it as the sagas do; False if done before.

        The announcement goes first: both steps are idempotent, and once the row is failed a retry
        of this activity would no longer find the payment to announce it.
        """
        status = PaymentStatus.FAILED.value
        if self._merchant_webhooks:
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await activity.client().start_workflow(
                    MERCHANT_NOTIFICATION_WORKFLOW,
                    MerchantEvent(
                        f"evt_{payment.id}_{status}", payment.id, status, SAGA_NOT_STARTED
                    ),
                    id=f"{payment.id}:notify:{status}",  # the id the sagas give this event
                    task_queue=activity.info().task_queue,
                )
        row = await self._store.update_payment(
            payment.id, status, failure_code=SAGA_NOT_STARTED, failure_reason=NOT_STARTED_REASON
        )
        if row is None:
            return False  # already terminal: an earlier attempt of this sweep failed it
        activity.logger.info("payment %s is failed (%s)", row.id, SAGA_NOT_STARTED)
        count_finished_payment(row)
        return True
