"""A provider operation's final outcome: failover, webhooks, polls, resends and open breakers."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from activities import providers as psp
    from domain.payments import (
        FailureCode,
        PaymentStatus,
        ProviderEventSignal,
    )
    from providers.base import Outcome, ProviderResult
    from workflows.saga.cancel import ClearEnd
    from workflows.saga.steps import (
        STEP_FAILED,
        ProviderOperation,
        error_type,
        provider_call,
        provider_queue,
    )

T = TypeVar("T")

FINAL_PROVIDER_STATUSES = ("succeeded", "declined")
# How often a call the provider has no record of is sent again (same key) at once, after the
# webhook's wait; later resends wait ever longer first (`_resend_delay`), so they never spin.
MAX_RESENDS = 3
# How many more, each after twice the wait of the one before (`_resend_delay`): a provider back
# within minutes takes the call; after them the saga polls (no history grows) until the
# provider has a record or an operator resolves the payment.
MAX_SPACED_RESENDS = 8


# Why a provider operation that did not succeed failed the payment, by its final outcome.
PROVIDER_FAILURES = {
    Outcome.declined: (FailureCode.PROVIDER_DECLINED, "the provider declined"),
    Outcome.not_processed: (FailureCode.PROVIDER_UNAVAILABLE, "no provider took it"),
    Outcome.rejected: (FailureCode.PROVIDER_REJECTED, "the provider rejected the request"),
}


class ProviderOutcomes(ClearEnd):
    """Provider calls and how the saga learns what became of them."""

    @workflow.signal(name="provider_event")
    def provider_event(self, event: ProviderEventSignal) -> None:
        """Keep the newest event per provider operation; duplicates and stale events change nothing."""
        key = (event.provider, event.idempotency_key)
        seen = self._provider_events.get(key)
        if seen is not None and (
            seen.status in FINAL_PROVIDER_STATUSES or seen.sequence >= event.sequence
        ):
            return
        self._provider_events[key] = event

    def failure_of(self, outcome: Outcome) -> tuple[str, str | None]:
        """The failure code and reason of a provider operation that did not succeed."""
        if self._resolution is not None:
            return FailureCode.RESOLVED_BY_OPERATOR, self._resolution.reason
        return PROVIDER_FAILURES[outcome]

    # -- provider operations ------------------------------------------------------------------

    async def call_provider(
        self,
        providers: list[str],
        call: Callable[[str], Awaitable[ProviderResult]],
        operation: ProviderOperation,
    ) -> tuple[str, Outcome]:
        """Make a provider operation and learn its final outcome.

        Returns the provider that took it ("" if none did) and the outcome: succeeded, declined,
        rejected (refused as invalid: certainly not done), or not_processed. The payment shows
        the provider as soon as one took the call.
        """
        return await self.outcome_of(await self.failover_waiting(providers, call), call, operation)

    async def failover_waiting(
        self, providers: list[str], call: Callable[[str], Awaitable[ProviderResult]]
    ) -> ProviderResult:
        """`with_failover`; for a saga that waits for open breakers (payouts, refunds), again
        after the time they stay open, for as long as every account skipped the call."""
        result = await self.with_failover(providers, call)
        while (
            result.outcome == Outcome.not_processed
            and self.waits_for_open_breakers
            and self._breaker_open_seconds is not None
            and workflow.patched("wait-for-open-breakers")
        ):
            await self._wait_for_a_breaker(self._breaker_open_seconds)
            result = await self.with_failover(providers, call)
        return result

    async def outcome_of(
        self,
        result: ProviderResult,
        call: Callable[[str], Awaitable[ProviderResult]],
        operation: ProviderOperation,
    ) -> tuple[str, Outcome]:
        """`call_provider` after its call: the final outcome of the answer `result`."""
        if result.outcome in (Outcome.not_processed, Outcome.rejected):
            return "", result.outcome
        if self.batch_status_writes and result.outcome in (Outcome.succeeded, Outcome.declined):
            self._provider_unrecorded = result.provider  # written with the final status
            return result.provider, result.outcome
        await self.set_provider(result.provider)
        return result.provider, await self.await_outcome(result, call, operation)

    async def _wait_for_a_breaker(
        self, seconds: float, settled: Callable[[], bool] | None = None
    ) -> bool:
        """Wait on a durable timer until the soonest breaker lets a probe through, or until
        `settled()`; whether it was settled.

        Without `settled`, nothing was ever sent: the customer may cancel meanwhile (the point
        of no return is lifted for the wait, and taken again after it). With it, an earlier
        call may have landed: the point of no return stays.
        """
        workflow.logger.info("every provider is skipped: waiting %.1f s for a breaker", seconds)
        # Never longer than the polling cap: a breaker's time left is a forecast, and an
        # operator who shortens it (PAYSAGA_BREAKER_OPEN_SECONDS) should not wait on old timers.
        wait = timedelta(seconds=min(seconds, self._timings.poll_interval_max_seconds))
        if settled is not None:
            try:
                await workflow.wait_condition(settled, timeout=wait)
            except TimeoutError:
                return False
            return True
        self._past_no_return = False
        await workflow.sleep(wait)
        self.point_of_no_return()
        return False

    def pay_out_to(
        self, payout: ProviderOperation, destination: str
    ) -> Callable[[str], Awaitable[ProviderResult]]:
        """The payout call at one provider, for `call_provider` (withdrawals and transfers)."""

        def at(provider: str) -> Awaitable[ProviderResult]:
            return workflow.execute_activity_method(
                psp.ProviderActivities.payout,
                psp.PayoutInput(
                    provider,
                    payout.idempotency_key,
                    self._payment_id,
                    payout.amount,
                    payout.currency,
                    destination,
                ),
                **provider_call(self._timings, provider),
            )

        return at

    async def with_failover(
        self, providers: list[str], call: Callable[[str], Awaitable[ProviderResult]]
    ) -> ProviderResult:
        """The first provider's answer that processed the call, or why none did.

        Fail over only when a provider certainly did nothing ("not processed", which the adapter
        says only after checking the provider has no record of the call). An unknown outcome
        stays with that provider, to be resolved by polling; a rejection as invalid is final.
        """
        self._breaker_open_seconds = None
        self._skipped_after_refusal = False
        for provider in providers:
            try:
                return await call(provider)
            except STEP_FAILED as err:
                if error_type(err) == failures.PROVIDER_REJECTED:
                    return ProviderResult(provider, Outcome.rejected, detail=str(err))
                if error_type(err) != failures.PROVIDER_NOT_PROCESSED:
                    # Attempts exhausted with no answer (timeouts): it may have been done.
                    return ProviderResult(provider, Outcome.unknown, detail=str(err))
                self._note_open_breaker(err)
        return ProviderResult("", Outcome.not_processed)

    def _note_open_breaker(self, err: BaseException) -> None:
        """Remember how long the breaker that skipped this call stays open, if one did."""
        cause = err.cause if isinstance(err, ActivityError) else err
        details = cause.details if isinstance(cause, ApplicationError) else ()
        if not details or not isinstance(details[0], dict):
            return  # refused by the provider itself, not skipped
        left = details[0].get(psp.BREAKER_OPEN_SECONDS_LEFT)
        if details[0].get(psp.BREAKER_SKIPPED_AFTER_REFUSAL):
            self._skipped_after_refusal = True
        if left is not None:
            soonest = self._breaker_open_seconds
            self._breaker_open_seconds = float(left) if soonest is None else min(soonest, left)

    async def await_outcome(
        self,
        result: ProviderResult,
        call: Callable[[str], Awaitable[ProviderResult]],
        operation: ProviderOperation,
    ) -> Outcome:
        """A provider operation's final outcome: from its answer, its webhook, or by polling.

        Polling backs off to `poll_interval_max_seconds` and never gives up; once the outcome has
        been unknown for `requires_intervention_after_seconds`, the payment shows
        `requires_intervention` and an operator may resolve it, while polling goes on. If the
        provider has no record of the call, the same request goes to it again under the same
        idempotency key (it takes it at most once), never to another provider.
        """
        deadline = workflow.now() + timedelta(
            seconds=self._timings.requires_intervention_after_seconds
        )
        resends = 0
        while result.outcome not in (Outcome.succeeded, Outcome.declined):
            provider = result.provider
            # Before this patch, the saga only polled after MAX_RESENDS: a provider that refused
            # every resend while it was down never got the call once it was back.
            spaced = workflow.patched("resends-spaced-after-no-record")
            resends_left = resends < MAX_RESENDS + (MAX_SPACED_RESENDS if spaced else 0)
            polled = await self._poll_outcome(
                provider, operation, deadline, record_expected=not resends_left
            )
            if polled != Outcome.not_processed:
                return polled
            if resends >= MAX_RESENDS:
                # Still no record after a few resends: send it again (same key, so at most once),
                # each time later, unless its final event or an operator's resolution comes first
                # (past the deadline, the payment shows `requires_intervention` meanwhile).
                await self._outcome_or_resolution(
                    provider, operation, self._resend_delay(resends - MAX_RESENDS)
                )
                if self.final_event(provider, operation) or self._resolution is not None:
                    continue  # the next poll reads it
            resends += 1
            result = await self._resend(provider, call, operation)
            if result.outcome == Outcome.not_processed and workflow.patched(
                "resend-not-processed-keeps-polling"
            ):
                # "Not processed" answers the resend only: the first call, unanswered, may
                # still land. Keep polling (an operator once unknown too long), never give up.
                result = ProviderResult(provider, Outcome.unknown, detail=result.detail)
                continue
            if result.outcome in (Outcome.not_processed, Outcome.rejected):
                return result.outcome
        return result.outcome

    def _resend_delay(self, late_resends: int) -> float:
        """Seconds before the resend that follows `late_resends` resends past MAX_RESENDS: doubling
        from the polling interval up to its cap, so a long outage adds few events to the history."""
        timings = self._timings
        doubled: float = timings.poll_interval_seconds * 2.0**late_resends
        return min(doubled, timings.poll_interval_max_seconds)

    async def _outcome_or_resolution(
        self, provider: str, operation: ProviderOperation, seconds: float
    ) -> None:
        """Wait on a durable timer, cut short by the operation's final event or a resolution."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: (
                    self.final_event(provider, operation) is not None
                    or self._resolution is not None
                ),
                timeout=timedelta(seconds=seconds),
            )

    async def _resend(
        self,
        provider: str,
        call: Callable[[str], Awaitable[ProviderResult]],
        operation: ProviderOperation,
    ) -> ProviderResult:
        """Send the call to `provider` again, under its key.

        While the provider's breaker skips it (nothing sent since the first call, so no resend
        after which the provider should have a record), wait on a durable timer for the time it stays open, or
        until the operation's final event or an operator's resolution comes, and send it again:
        never poll, as if it had gone, for a request that was not sent.
        """
        result = await self.with_failover([provider], call)
        while (
            result.outcome == Outcome.not_processed
            and self._breaker_open_seconds is not None
            # Skipped after the provider refused it unprocessed (this resend's first attempt,
            # say, whose refusal opened the breaker): a resend made, that left no record.
            and not self._skipped_after_refusal
            and workflow.patched("skipped-resend-waits-for-breaker")
        ):
            settled = await self._wait_for_a_breaker(
                self._breaker_open_seconds,
                lambda: (
                    self.final_event(provider, operation) is not None
                    or self._resolution is not None
                ),
            )
            if settled:  # the first call's outcome came: polling reads it
                return ProviderResult(provider, Outcome.unknown, detail="settled meanwhile")
            result = await self.with_failover([provider], call)
        return result

    async def _poll_outcome(
        self,
        provider: str,
        operation: ProviderOperation,
        deadline: Any,
        *,
        record_expected: bool = False,
    ) -> Outcome:
        """Wait for the webhook, then poll; whichever (or an operator's resolve) comes first."""

        def got_event() -> bool:
            return self.final_event(provider, operation) is not None

        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: got_event() or self._resolution is not None,
                timeout=timedelta(seconds=self._timings.webhook_wait_seconds),
            )
        poll: Any = None
        if not got_event() and self._resolution is None:
            poll = workflow.start_activity_method(
                psp.ProviderActivities.final_status,
                psp.StatusInput(provider, operation.idempotency_key, record_expected),
                task_queue=provider_queue(provider),
                start_to_close_timeout=timedelta(seconds=self._timings.provider_call_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=self._timings.poll_interval_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=self._timings.poll_interval_max_seconds),
                ),
            )
            await self._wait_or_intervene(
                lambda: poll.done() or got_event() or self._resolution is not None, deadline
            )
            if not poll.done():
                poll.cancel()
            elif poll.exception() is not None and not got_event() and self._resolution is None:
                # The provider's status cannot be read at all: only an operator can tell.
                workflow.logger.error("status of %s unreadable: %s", provider, poll.exception())
                await self._wait_or_intervene(
                    lambda: got_event() or self._resolution is not None, workflow.now()
                )
        if self._resolution is not None:
            succeeded = self._resolution.outcome == "succeeded"
            return Outcome.succeeded if succeeded else Outcome.declined
        event = self.final_event(provider, operation)
        if event is not None:
            return Outcome(event.status)
        answer: ProviderResult = await poll
        return answer.outcome

    async def _wait_or_intervene(self, done: Callable[[], bool], deadline: Any) -> None:
        """Wait until `done()`; past the deadline, show `requires_intervention` and keep waiting."""
        remaining = (deadline - workflow.now()).total_seconds()
        if remaining > 0:
            try:
                await workflow.wait_condition(done, timeout=timedelta(seconds=remaining))
                return
            except TimeoutError:
                pass
        await self.set_status(
            PaymentStatus.REQUIRES_INTERVENTION, reason="the provider's outcome is still unknown"
        )
        await workflow.wait_condition(done)

    def final_event(
        self, provider: str, operation: ProviderOperation
    ) -> ProviderEventSignal | None:
        """The provider's final event for the operation, if it matches what was asked."""
        event = self._provider_events.get((provider, operation.idempotency_key))
        if event is None or event.status not in FINAL_PROVIDER_STATUSES:
            return None
        if (event.amount, event.currency) not in (
            (None, None),
            (operation.amount, operation.currency),
        ):
            workflow.logger.warning(
                "event %s of %s ignored: %s %s does not match the call's %s %s",
                event.event_id,
                provider,
                event.amount,
                event.currency,
                operation.amount,
                operation.currency,
            )
            return None
        return event
