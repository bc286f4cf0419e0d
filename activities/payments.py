"""The payment record the API serves, kept current by the sagas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import failures
from activities.ledger import LedgerActivities, PostTransactionInput
from domain.payments import FailureCode, PaymentStatus, RecordedStatus
from paysaga.observability.sdk_meter import counter, histogram_seconds
from paysaga.store import PaymentRow, Store
from paysaga.store.payments import update_payment_in

# Served by the worker's Temporal SDK Prometheus endpoint (worker_metrics_address). Labels are
# bounded: kinds, statuses and failure codes are the domain's enums (anything else is `other`).
PAYMENTS_TOTAL = "paysaga_payments_total"  # {kind, status, failure_code, provider}
PAYMENT_AMOUNT_MINOR_TOTAL = "paysaga_payment_amount_minor_total"  # {kind, status, currency}
PAYMENT_TIME_TO_TERMINAL = "paysaga_payment_time_to_terminal_seconds"  # {kind, status}
# Bucket bounds of PAYMENT_TIME_TO_TERMINAL: a payment may wait for a customer or an operator.
TIME_TO_TERMINAL_BUCKETS = (
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    86400.0,
)
FAILURE_CODES = frozenset(code.value for code in FailureCode)


@dataclass
class RecordStatusInput:
    payment_id: str
    status: str
    provider: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    # What the customer must do while `requires_action` (the Payment's `next_action`).
    next_action: dict[str, Any] | None = None


class PaymentActivities:
    """Writes of the payments table; a terminal payment is never changed again."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name="payments.record_status")
    async def record_status(self, change: RecordStatusInput) -> RecordedStatus | None:
        """Set the payment's status (idempotent); answer the row's status as it now is.

        A terminal payment is never changed: the answer then is its final status, which the saga
        adopts (its first workflow task may have written it before that task was lost).
        """
        row = await self._store.update_payment(
            change.payment_id,
            change.status,
            provider=change.provider,
            failure_code=change.failure_code,
            failure_reason=change.failure_reason,
            next_action=change.next_action,
        )
        if row is None:
            current = await self._store.get_payment(change.payment_id)
            if current is None:
                return None
            return RecordedStatus(current.status, current.failure_code)
        activity.logger.info(
            "payment %s is %s%s",
            row.id,
            row.status,
            f" ({row.failure_code})" if row.failure_code else "",
        )
        if PaymentStatus(change.status).is_terminal:
            count_finished_payment(row)
        return RecordedStatus(row.status, row.failure_code)


@dataclass
class PostAndRecordInput:
    """A ledger posting, and the status change it makes true."""

    posting: PostTransactionInput
    change: RecordStatusInput


class BookingActivities:
    """A posting and the payment status it makes true, in one local step (the deposit's credit
    and `succeeded`): one fewer step for the saga, and a shorter last workflow task."""

    def __init__(self, ledger: LedgerActivities, payments: PaymentActivities) -> None:
        self._ledger = ledger
        self._payments = payments

    @activity.defn(name="payments.post_and_record_status")
    async def post_and_record_status(self, booking: PostAndRecordInput) -> RecordedStatus | None:
        """The posting and the status change in one database transaction, under the payment
        row's lock: a row already final (failed by a lost workflow task, or by an operator
        meanwhile) gets no posting, and its final status is the answer, which the saga adopts.
        Idempotent: a retry after the commit finds the row final and the posting made. A ledger
        refusal fails the step, typed `PostingRefused`, and writes nothing: only then may the
        saga take the posting as not made."""
        change = booking.change
        written: list[PaymentRow] = []

        async def write_status_first(conn: Any) -> None:
            written.clear()  # a transaction retried after a serialization failure starts over
            row = await update_payment_in(
                conn,
                change.payment_id,
                change.status,
                change.provider,
                change.failure_code,
                change.failure_reason,
            )
            if row is None:
                raise _AlreadyFinal  # rolls the transaction back: nothing is posted
            written.append(row)

        try:
            await self._ledger.post(booking.posting, alongside=write_status_first)
        except _AlreadyFinal:
            return await self._payments.record_status(change)  # answers the final status
        except ApplicationError as refusal:  # the ledger's refusals, already non-retryable
            raise ApplicationError(
                f"{refusal.type}: {refusal}", type=failures.POSTING_REFUSED, non_retryable=True
            ) from refusal
        row = written[0]
        activity.logger.info(
            "payment %s is %s, with %s", row.id, row.status, booking.posting.idempotency_key
        )
        if PaymentStatus(row.status).is_terminal:
            count_finished_payment(row)
        return RecordedStatus(row.status, row.failure_code)


class _AlreadyFinal(Exception):
    """The payment row is final: its transaction is rolled back, nothing posted."""


def count_finished_payment(payment: PaymentRow) -> None:
    """Count a payment that reached its final status, and the time it took, on the worker's
    metrics endpoint."""
    meter = activity.metric_meter()
    labels = {"kind": payment.kind, "status": payment.status}
    failure = payment.failure_code or ""
    failure_code = failure if failure in FAILURE_CODES or not failure else "other"
    # The provider account that had it last (configured accounts: bounded), "" before any.
    provider = payment.provider or ""
    counter(meter, PAYMENTS_TOTAL, "Payments that reached a final status.").add(
        1, {**labels, "failure_code": failure_code, "provider": provider}
    )
    counter(
        meter, PAYMENT_AMOUNT_MINOR_TOTAL, "Amounts of the payments that reached a final status."
    ).add(payment.amount, {**labels, "currency": payment.currency})
    took = (payment.updated_at - payment.created_at).total_seconds()
    histogram_seconds(
        meter, PAYMENT_TIME_TO_TERMINAL, "Time from a payment's creation to its final status."
    ).record(max(took, 0.0), labels)
