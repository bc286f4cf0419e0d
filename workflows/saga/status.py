"""Status keeping: a status change written to the payment's row, the saga's state and its search attributes."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.ledger import (
        PostTransactionInput,
    )
    from activities.payments import (
        BookingActivities,
        PaymentActivities,
        PostAndRecordInput,
        RecordStatusInput,
    )
    from domain import search_attributes as sa
    from domain.payments import (
        PaymentState,
        PaymentStatus,
        RecordedStatus,
    )
    from workflows.saga.state import SagaState
    from workflows.saga.steps import LOCAL_STEP

T = TypeVar("T")


class StatusKeeping(SagaState):
    """Status, provider and failure writes, in the order whoever waits on them reads them."""

    async def set_status(
        self,
        status: PaymentStatus,
        *,
        provider: str | None = None,
        failure_code: str | None = None,
        reason: str | None = None,
        posting: PostTransactionInput | None = None,
        next_action: dict[str, Any] | None = None,
    ) -> PaymentState:
        """Record a status change on the payment, then in the saga's state and search attributes.

        The payment row is written first, so that whoever waits on the saga's state (the cancel
        and review updates) reads the new status from the API. A change to the same status
        changes nothing. With a `posting`, the ledger transaction that makes the status true is
        posted first, in the same local step; if the ledger refuses it, nothing is written and the
        step fails with `PostingRefused`.
        """
        provider = provider or self._provider_unrecorded
        if status == self._state.status and provider in (None, self._state.provider):
            return self._state
        if status.is_terminal:
            self.point_of_no_return()  # a cancel must not overtake the final write
        change = RecordStatusInput(
            self._payment_id, status.value, provider, failure_code, reason, next_action
        )
        if posting is not None and status == PaymentStatus.SUCCEEDED:
            self._posting_for_success = posting
        if posting is None:
            recorded = await self.record_status(change)
        else:
            recorded = await workflow.execute_local_activity_method(
                BookingActivities.post_and_record_status,
                PostAndRecordInput(posting, change),
                **LOCAL_STEP,
            )
        self._provider_unrecorded = None
        if recorded is not None and recorded.status != status.value:
            # Already final: a lost workflow task wrote it (its local steps ran, its commands
            # were refused). The row tells what happened to the money; the saga adopts it.
            workflow.logger.warning("%s was already %s", self._payment_id, recorded.status)
            status, failure_code = PaymentStatus(recorded.status), recorded.failure_code
        self._state = PaymentState(status, provider or self._state.provider, failure_code)
        if not status.is_terminal:
            self.honour_cancel()  # a cancel that reached the write but did not stop it
        updates = [*self._attributes_unmirrored, sa.PAYMENT_STATUS.value_set(status.value)]
        self._attributes_unmirrored = []
        if provider:
            updates.append(sa.PROVIDER.value_set(provider))
        workflow.upsert_search_attributes(updates)
        return self._state

    async def record_status(self, change: RecordStatusInput) -> RecordedStatus | None:
        """Write a status change to the saga's row: a payment's; a saga of another row (a
        refund) overrides this with its own local step."""
        recorded: RecordedStatus | None = await workflow.execute_local_activity_method(
            PaymentActivities.record_status, change, **LOCAL_STEP
        )
        return recorded

    async def set_provider(self, provider: str) -> None:
        if provider == self._state.provider:
            return
        await self.record_status(
            RecordStatusInput(self._payment_id, self._state.status.value, provider)
        )
        self._state = PaymentState(self._state.status, provider, None)
        workflow.upsert_search_attributes(
            [*self._attributes_unmirrored, sa.PROVIDER.value_set(provider)]
        )
        self._attributes_unmirrored = []

    async def fail(self, failure_code: str, reason: str | None = None) -> PaymentState:
        if self.is_reset_run():
            # An earlier run may have done steps this one failed before (its hold): undone.
            await self.compensations.run()
        return await self.set_status(PaymentStatus.FAILED, failure_code=failure_code, reason=reason)
