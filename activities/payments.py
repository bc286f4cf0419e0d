"""The payment record the API serves, kept current by the sagas."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from paysaga.store import Store


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
    async def record_status(self, change: RecordStatusInput) -> None:
        """Set the payment's status (idempotent: the same change twice is one change)."""
        await self._store.update_payment(
            change.payment_id,
            change.status,
            provider=change.provider,
            failure_code=change.failure_code,
            failure_reason=change.failure_reason,
        )
