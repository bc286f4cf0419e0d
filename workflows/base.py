"""What every payment saga shares: status keeping, provider events, retry policies, compensations."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import providers as psp
    from activities.ledger import (
        HoldFundsInput,
        LedgerActivities,
        ReverseTransactionInput,
        VoidHoldInput,
    )
    from activities.payments import PaymentActivities, RecordStatusInput
    from activities.risk import KycInput, RiskActivities, RiskInput, RiskResult
    from domain import search_attributes as sa
    from domain.payments import (
        FailureCode,
        MerchantEvent,
        PaymentState,
        PaymentStatus,
        ProviderEventSignal,
        ReviewDecision,
        SagaTimings,
    )
    from ledger.models import Hold
    from providers.base import Outcome, ProviderResult
    from providers.routing import provider_task_queue
    from workflows.merchant_notification import MerchantNotificationWorkflow

# Local steps (database, rules) run as local activities: in the worker that runs the workflow,
# with no round trip through the Temporal server (the bottleneck of a small cluster); they are
# idempotent, so a retry after a crash is safe. Retried for as long as a dependency is down.
LOCAL_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(seconds=10)),
}
FINAL_PROVIDER_STATUSES = ("succeeded", "declined")


# Why a provider operation that did not succeed failed the payment, by its final outcome.
PROVIDER_FAILURES = {
    Outcome.declined: (FailureCode.PROVIDER_DECLINED, "the provider declined"),
    Outcome.not_processed: (FailureCode.PROVIDER_UNAVAILABLE, "no provider took it"),
}


# What a failed activity raises in the workflow: an ActivityError wrapping the activity's
# ApplicationError, or, for a local activity, the ApplicationError itself.
STEP_FAILED = (ActivityError, ApplicationError)


def provider_queue(provider: str) -> str:
    """This saga's task queue for calls to `provider` (each provider has its own)."""
    return provider_task_queue(workflow.info().task_queue, provider)


def provider_call(timings: SagaTimings, provider: str) -> dict[str, Any]:
    """Options of a provider call: its queue, a few attempts while it answers "not processed"."""
    return {
        "task_queue": provider_queue(provider),
        "start_to_close_timeout": timedelta(seconds=timings.provider_call_seconds),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=timings.poll_interval_seconds),
            maximum_attempts=timings.provider_attempts,
            non_retryable_error_types=[psp.REJECTED],
        ),
    }


def error_type(err: BaseException) -> str | None:
    """The ApplicationError type behind an activity failure, if any."""
    cause = err.cause if isinstance(err, ActivityError) else err  # local: the error itself
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
        self._review: ReviewDecision | None = None
        self._merchant_webhooks = False

    def begin(self, payment_id: str, timings: SagaTimings) -> None:
        """Called first by every saga's run: who we are and how we announce ourselves."""
        self._payment_id = payment_id
        self._merchant_webhooks = timings.merchant_webhooks

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

    @workflow.update(name="review")
    async def review(self, decision: ReviewDecision) -> PaymentState:
        """An operator's approve or reject of a payment in review."""
        self._review = decision
        await workflow.wait_condition(lambda: self._state.status != PaymentStatus.REQUIRES_REVIEW)
        return self._state

    @review.validator
    def _review_allowed(self, decision: ReviewDecision) -> None:
        if self._state.status != PaymentStatus.REQUIRES_REVIEW or self._review is not None:
            raise ApplicationError("the payment is not waiting for review", type="NotInReview")
        if decision.decision not in ("approve", "reject"):
            raise ApplicationError("decision must be approve or reject", type="InvalidDecision")

    async def review_by_operator(
        self, reasons: list[str], deadline_seconds: float, interrupted: Callable[[], bool]
    ) -> str | None:
        """Wait in `requires_review` for an operator; the rejection reason, or None if approved.

        No decision before the deadline is a rejection. When `interrupted()` turns true (a
        cancel), the wait ends without a decision and the caller takes over.
        """
        await self.set_status(PaymentStatus.REQUIRES_REVIEW, reason=", ".join(reasons))
        try:
            await workflow.wait_condition(
                lambda: self._review is not None or interrupted(),
                timeout=timedelta(seconds=deadline_seconds),
            )
        except TimeoutError:
            return "no review before the deadline"
        if self._review is not None and self._review.decision == "reject":
            return self._review.reason or "rejected by an operator"
        if not interrupted():
            await self.set_status(PaymentStatus.PROCESSING)
        return None

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
        """Record a status change on the payment, then in the saga's state and search attributes.

        The payment row is written first, so that whoever waits on the saga's state (the cancel
        and review updates) reads the new status from the API.
        """
        await workflow.execute_local_activity_method(
            PaymentActivities.record_status,
            RecordStatusInput(self._payment_id, status.value, provider, failure_code, reason),
            **LOCAL_STEP,
        )
        self._state = PaymentState(status, provider or self._state.provider, failure_code)
        updates = [sa.PAYMENT_STATUS.value_set(status.value)]
        if provider:
            updates.append(sa.PROVIDER.value_set(provider))
        workflow.upsert_search_attributes(updates)
        if self._merchant_webhooks:
            await workflow.start_child_workflow(
                MerchantNotificationWorkflow.run,
                MerchantEvent(
                    f"evt_{self._payment_id}_{status.value}",
                    self._payment_id,
                    status.value,
                    failure_code,
                ),
                id=f"{self._payment_id}:notify:{status.value}",
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        return self._state

    async def set_provider(self, provider: str) -> None:
        self._state = PaymentState(self._state.status, provider, None)
        workflow.upsert_search_attributes([sa.PROVIDER.value_set(provider)])
        await workflow.execute_local_activity_method(
            PaymentActivities.record_status,
            RecordStatusInput(self._payment_id, self._state.status.value, provider),
            **LOCAL_STEP,
        )

    async def fail(self, failure_code: str, reason: str | None = None) -> PaymentState:
        return await self.set_status(PaymentStatus.FAILED, failure_code=failure_code, reason=reason)

    async def call_provider(
        self,
        providers: list[str],
        call: Callable[[str], Awaitable[ProviderResult]],
        idempotency_key: str,
        timings: SagaTimings,
    ) -> tuple[str, Outcome]:
        """Make a provider operation and learn its final outcome.

        Returns the provider that took it ("" if none did) and the outcome: succeeded, declined,
        or not_processed. The payment shows the provider as soon as one took the call.
        """
        result = await self.with_failover(providers, call)
        if result is None:
            return "", Outcome.not_processed
        await self.set_provider(result.provider)
        return result.provider, await self.await_outcome(result, idempotency_key, timings, call)

    async def with_failover(
        self, providers: list[str], call: Callable[[str], Awaitable[ProviderResult]]
    ) -> ProviderResult | None:
        """The first provider's answer that processed the call; None if none did.

        Fail over only when a provider certainly did nothing ("not processed"): any other error,
        or an unknown outcome, stays with that provider, to be resolved by polling.
        """
        for provider in providers:
            try:
                return await call(provider)
            except STEP_FAILED as err:
                if error_type(err) != psp.NOT_PROCESSED:
                    raise
        return None

    async def await_outcome(
        self,
        result: ProviderResult,
        idempotency_key: str,
        timings: SagaTimings,
        call: Callable[[str], Awaitable[ProviderResult]],
    ) -> Outcome:
        """A provider operation's final outcome: from its answer, its webhook, or by polling.

        Returns succeeded, declined, or not_processed when the provider certainly never took
        the operation. An answer lost in a timeout is resolved by polling the same provider; if
        it has no record of the call, the same request goes to it again under the same
        idempotency key (it takes it at most once), never to another provider.
        """
        while result.outcome not in (Outcome.succeeded, Outcome.declined):
            try:
                await workflow.wait_condition(
                    lambda: self.final_event(idempotency_key) is not None,
                    timeout=timedelta(seconds=timings.webhook_wait_seconds),
                )
                event = self.final_event(idempotency_key)
                return Outcome(event.status) if event else Outcome.unknown
            except TimeoutError:
                polled = await workflow.execute_activity_method(
                    psp.ProviderActivities.final_status,
                    psp.StatusInput(result.provider, idempotency_key),
                    task_queue=provider_queue(result.provider),
                    start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                    schedule_to_close_timeout=timedelta(days=3),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=timings.poll_interval_seconds),
                        backoff_coefficient=2.0,
                        maximum_interval=timedelta(minutes=5),
                    ),
                )
                if polled.outcome != Outcome.not_processed:
                    return polled.outcome
                try:
                    result = await call(result.provider)
                except STEP_FAILED as err:
                    if error_type(err) != psp.NOT_PROCESSED:
                        raise
                    return Outcome.not_processed
        return result.outcome

    async def check_kyc(self, customer_id: str) -> tuple[str, str | None] | None:
        """KYC and sanctions on the customer: None if approved, else (failure code, reason)."""
        kyc = await workflow.execute_local_activity_method(
            RiskActivities.check_kyc, KycInput(customer_id), **LOCAL_STEP
        )
        return None if kyc.approved else (kyc.failure_code or FailureCode.KYC_REJECTED, kyc.reason)

    async def assess_risk(self, payment: RiskInput) -> RiskResult:
        """The fraud rules' decision (approve, review, decline), shown as a search attribute."""
        risk: RiskResult = await workflow.execute_local_activity_method(
            RiskActivities.assess_payment, payment, **LOCAL_STEP
        )
        workflow.upsert_search_attributes([sa.RISK_DECISION.value_set(risk.decision)])
        return risk

    async def hold_funds(
        self, hold_request: HoldFundsInput, compensations: Compensations
    ) -> Hold | None:
        """Reserve the funds, its release registered first; None when the funds are not there."""
        # Registered before the hold: the hold may be made and its answer lost.
        compensations.add(functools.partial(self.release_hold, hold_request))
        try:
            return await workflow.execute_local_activity_method(
                LedgerActivities.hold_funds, hold_request, **LOCAL_STEP
            )
        except STEP_FAILED as err:
            if error_type(err) == "InsufficientFunds":
                return None
            raise

    async def release_hold(self, hold_request: HoldFundsInput) -> None:
        """Void the saga's hold; replaying the hold by its key finds it if it was ever made."""
        try:
            hold = await workflow.execute_local_activity_method(
                LedgerActivities.hold_funds, hold_request, **LOCAL_STEP
            )
        except STEP_FAILED as err:
            if error_type(err) == "InsufficientFunds":
                return  # never made, nothing to release
            raise
        try:
            await workflow.execute_local_activity_method(
                LedgerActivities.void_hold,
                VoidHoldInput(f"{self._payment_id}:void", hold.id),
                **LOCAL_STEP,
            )
        except STEP_FAILED as err:
            if error_type(err) not in ("HoldNotPending", "HoldExpired"):
                raise  # else: already released

    async def reverse(self, transaction_id: int, step: str) -> None:
        """Post the reversing transaction of one of the saga's ledger transactions."""
        await workflow.execute_local_activity_method(
            LedgerActivities.reverse_transaction,
            ReverseTransactionInput(f"{self._payment_id}:reverse-{step}", transaction_id),
            **LOCAL_STEP,
        )
