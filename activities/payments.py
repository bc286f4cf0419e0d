"""The payment record the API serves, kept current by the sagas."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from domain.payments import PaymentStatus, RecordedStatus
from paysaga.store import PaymentRow, Store

# Served by the worker's Temporal SDK Prometheus endpoint (worker_metrics_address).
PAYMENTS_TOTAL = "paysaga_payments_total"
PAYMENT_AMOUNT_MINOR_TOTAL = "paysaga_payment_amount_minor_total"


@dataclass
class RecordStatusInput:
    payment_id: str
    status: str
    provider: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None


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


def count_finished_payment(payment: PaymentRow) -> None:
    """Count a payment that reached its final status, on the worker's metrics endpoint."""
    meter = activity.metric_meter()
    labels = {"kind": payment.kind, "status": payment.status}
    meter.create_counter(PAYMENTS_TOTAL, "Payments that reached a final status.").add(1, labels)
    meter.create_counter(
        PAYMENT_AMOUNT_MINOR_TOTAL, "Amounts of the payments that reached a final status."
    ).add(payment.amount, {**labels, "currency": payment.currency})
