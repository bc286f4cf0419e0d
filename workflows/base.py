"""What every payment saga shares: status keeping, provider events, retry policies, compensations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.payments import PaymentActivities, RecordStatusInput
    from domain import search_attributes as sa
    from domain.payments import PaymentState, PaymentStatus, ProviderEventSignal

# Local steps (database, rules): quick, retried for as long as it takes a dependency to come back.
LOCAL_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(seconds=10)),
}
FINAL_PROVIDER_STATUSES = ("succeeded", "declined")


def error_type(err: BaseException) -> str | None:
    """The ApplicationError type behind an activity failure, if any."""
    cause = err.cause if isinstance(err, ActivityError) else err
    return cause.type if isinstance(cause, ApplicationError) else None


class Compensations:
    """Undo steps, registered *before* their step (a step may succeed and fail to report it)."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], Awaitable[Any]]] = []

    def add(self, step: Callable[[], Awaitable[Any]]) -> None:
        self._steps.append(step)

    async def run(self) -> None:
        """Run every registered compensation, the last registered first."""
        while self._steps:
            await self._steps.pop()()


class PaymentSaga:
    """Status, search attributes and provider events of one payment."""

    def __init__(self) -> None:
        self._state = PaymentState(PaymentStatus.PROCESSING)
        self._payment_id = ""
        self._provider_events: dict[str, ProviderEventSignal] = {}

    @workflow.query(name="state")
    def state(self) -> PaymentState:
        return self._state

    @workflow.signal(name="provider_event")
    def provider_event(self, event: ProviderEventSignal) -> None:
        """Keep the newest event per provider operation; duplicates and stale events change nothing."""
        seen = self._provider_events.get(event.idempotency_key)
        if seen is not None and (
            seen.status in FINAL_PROVIDER_STATUSES or seen.sequence >= event.sequence
        ):
            return
        self._provider_events[event.idempotency_key] = event

    def final_event(self, idempotency_key: str) -> ProviderEventSignal | None:
        event = self._provider_events.get(idempotency_key)
        return event if event is not None and event.status in FINAL_PROVIDER_STATUSES else None

    async def set_status(
        self,
        status: PaymentStatus,
        *,
        provider: str | None = None,
        failure_code: str | None = None,
        reason: str | None = None,
    ) -> PaymentState:
        """Record a status change on the payment and in the search attributes."""
        self._state = PaymentState(status, provider or self._state.provider, failure_code)
        updates = [sa.PAYMENT_STATUS.value_set(status.value)]
        if provider:
            updates.append(sa.PROVIDER.value_set(provider))
        workflow.upsert_search_attributes(updates)
        await workflow.execute_activity_method(
            PaymentActivities.record_status,
            RecordStatusInput(self._payment_id, status.value, provider, failure_code, reason),
            **LOCAL_STEP,
        )
        return self._state

    async def set_provider(self, provider: str) -> None:
        self._state = PaymentState(self._state.status, provider, None)
        workflow.upsert_search_attributes([sa.PROVIDER.value_set(provider)])
        await workflow.execute_activity_method(
            PaymentActivities.record_status,
            RecordStatusInput(self._payment_id, self._state.status.value, provider),
            **LOCAL_STEP,
        )

    async def fail(self, failure_code: str, reason: str | None = None) -> PaymentState:
        return await self.set_status(PaymentStatus.FAILED, failure_code=failure_code, reason=reason)
