"""The refund record the API serves, kept current by the Refund saga."""

from __future__ import annotations

from temporalio import activity

from activities.payments import RecordStatusInput
from domain.payments import RecordedStatus
from domain.refunds import row_status, saga_status
from paysaga.store import Store


class RefundActivities:
    """Writes of the refunds table; a terminal refund is never changed again."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name="refunds.record_status")
    async def record_status(self, change: RecordStatusInput) -> RecordedStatus | None:
        """Set the refund's status (idempotent; `payment_id` is the refund's id here); answer
        its status as it now is, in the saga's terms (a `canceled` saga shows `failed`
        `canceled` on the row). A terminal refund is never changed: the answer is its final
        status, which the saga adopts."""
        status, failure_code = row_status(change.status, change.failure_code)
        row = await self._store.update_refund(
            change.payment_id, status, failure_code, change.failure_reason
        )
        if row is None:
            row = await self._store.get_refund(change.payment_id)
            if row is None:
                return None
        else:
            activity.logger.info(
                "refund %s is %s%s",
                row.id,
                row.status,
                f" ({row.failure_code})" if row.failure_code else "",
            )
        return RecordedStatus(*saga_status(row.status, row.failure_code))
