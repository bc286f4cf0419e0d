"""What every payment saga shares: a clear end on every path, status keeping, provider outcomes.

A saga's `run` is decorated with `@clear_end`, which makes three promises for every saga:

- Cancels. Before the saga's point of no return, a cancel (the API's `cancel` update or a cancel
  from the Temporal UI) interrupts the saga's steps; its compensations run and it ends `canceled`.
  A cancel once accepted is kept: a step it reached may complete anyway (a commit already sent),
  and then every later local step, and the point of no return itself, honour the cancel instead
  of going on (`honour_cancel`). After the point of no return, the API's cancel is refused and a
  Temporal cancel is recorded (log line and memo) but does not stop the saga: its steps are
  shielded, and it finishes what it started.
- Failures. Any step failure the saga did not plan for ends it clearly: before the point of no
  return it compensates and fails (`provider_rejected` or `internal_error`); after it, the payment
  waits in `requires_intervention` for an operator's `resolve`, never in silence.
- No saga workflow ends Failed in Temporal: it completes with its final status (or ends Canceled
  when it was canceled before its point of no return).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import (
    ActivityCancellationType,
)

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from activities import providers as psp
    from activities.ledger import (
        HoldFundsInput,
        LedgerActivities,
        PostTransactionInput,
        ReleaseHoldInput,
        ReverseByKeyInput,
    )
    from activities.payments import (
        BookingActivities,
        PaymentActivities,
        PostAndRecordInput,
        RecordStatusInput,
    )
    from activities.risk import KycInput, RiskActivities, RiskInput, RiskResult, Screening
    from domain import search_attributes as sa
    from domain.payments import (
        FailureCode,
        PaymentState,
        PaymentStatus,
        ProviderEventSignal,
        RecordedStatus,
        ResolveDecision,
        ReviewDecision,
        SagaTimings,
    )
    from ledger.models import Hold
    from providers.base import Outcome, ProviderResult
    from providers.routing import provider_task_queue

# Local steps (database, rules) run as local activities: in the worker that runs the workflow,
# with no round trip through the Temporal server; they are idempotent, so a retry after a crash
# is safe. Retried for as long as a dependency is down: in place for the first half minute, then
# on durable timers with backoff, so that a long outage does not grow the history. A cancel waits
# for the step to finish, so that a compensation never races the step it undoes.
LOCAL_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=10)),
    "local_retry_threshold": timedelta(seconds=30),
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
}
# A ledger step whose scheduling must be in the history before it runs (a point of no return
# that writes to the ledger): a regular activity on the saga's own queue, retried like a local one.
DURABLE_LEDGER_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=10)),
}
FINAL_PROVIDER_STATUSES = ("succeeded", "declined")
# How often a call the provider has no record of is sent again (same key) at once, after the
# webhook's wait; later resends wait ever longer first (`_resend_delay`), so they never spin.
MAX_RESENDS = 3
# How many more, each after twice the wait of the one before (`_resend_delay`): a provider back
# within minutes takes the call; after them the saga polls (no history grows) until the
# provider has a record or an operator resolves the payment.
MAX_SPACED_RESENDS = 8
# How long an operator's `resolve` waits for its booking before answering that it was taken.
RESOLVE_ANSWER_WAIT = timedelta(seconds=5)


# Why a provider operation that did not succeed failed the payment, by its final outcome.
PROVIDER_FAILURES = {
    Outcome.declined: (FailureCode.PROVIDER_DECLINED, "the provider declined"),
    Outcome.not_processed: (FailureCode.PROVIDER_UNAVAILABLE, "no provider took it"),
    Outcome.rejected: (FailureCode.PROVIDER_REJECTED, "the provider rejected the request"),
}


# What a failed activity raises in the workflow: an ActivityError wrapping the activity's
# ApplicationError, or, for a local activity, the ApplicationError itself.
STEP_FAILED = (ActivityError, ApplicationError)

T = TypeVar("T")


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
            non_retryable_error_types=[failures.PROVIDER_REJECTED],
        ),
    }


def error_type(err: BaseException) -> str | None:
    """The ApplicationError type behind an activity failure, if any."""
    cause = err.cause if isinstance(err, ActivityError) else err  # local: the error itself
    return cause.type if isinstance(cause, ApplicationError) else None


class Compensations:
    """Undo steps, registered *before* their step (a step may succeed and fail to report it).

    Each is idempotent and finds what it undoes by its idempotency key, so running one that has
    nothing to undo, or running it again after an interruption, is harmless.
    """

    def __init__(self) -> None:
        self._steps: list[Callable[[], Awaitable[Any]]] = []

    def add(self, step: Callable[[], Awaitable[Any]]) -> None:
        self._steps.append(step)

    async def run(self) -> None:
        """Run every registered compensation, the last registered first; each leaves once done."""
        while self._steps:
            await self._steps[-1]()
            self._steps.pop()


@dataclass(frozen=True)
class ProviderOperation:
    """What the saga asked a provider to do: its events and polls are matched against it."""

    idempotency_key: str
    amount: int
    currency: str


class PaymentInput(Protocol):
    payment_id: str
    timings: SagaTimings


class PaymentSaga:
    """Status, search attributes, cancels, reviews, resolutions and provider events of a payment."""

    # Write the provider that answered with a final outcome, and the risk decision, with the
    # saga's next status change (one local step, one upsert) rather than each on its own. A saga
    # type sets it from its first release on: it changes the commands its histories record.
    batch_status_writes = False
    # When every provider was skipped by an open circuit breaker: wait for one to close (a
    # payout or a refund, which has nowhere else to go) rather than fail `provider_unavailable`.
    waits_for_open_breakers = False

    def __init__(self) -> None:
        self._state = PaymentState(PaymentStatus.PROCESSING)
        self._payment_id = ""
        self._key_prefix = ""  # what the saga's own ledger keys start with
        self._timings = SagaTimings()
        self._provider_events: dict[tuple[str, str], ProviderEventSignal] = {}
        self._review: ReviewDecision | None = None
        self._review_open = False
        self._review_taken: ReviewDecision | None = None
        self._resolution: ResolveDecision | None = None
        self._past_no_return = False
        self._cancel_requested = False
        self._ending = False  # the saga's steps are over: it is compensating or ending
        self._canceled_in_temporal = False
        self._steps: asyncio.Task[PaymentState] | None = None
        self.compensations = Compensations()
        # With `batch_status_writes`: what the next status change writes besides its status.
        self._provider_unrecorded: str | None = None
        self._attributes_unmirrored: list[SearchAttributeUpdate[Any]] = []
        # The posting that makes `succeeded` true, if the saga books it with that status: an
        # operator's `succeeded` books it too (found by its key: made at most once).
        self._posting_for_success: PostTransactionInput | None = None
        # How long the soonest of the breakers that skipped the last call stays open, if any did;
        # and whether one skipped it after the provider had refused it unprocessed.
        self._breaker_open_seconds: float | None = None
        self._skipped_after_refusal = False

    # -- the saga's frame: clear ends on cancel and on unplanned failure ---------------------

    def point_of_no_return(self) -> None:
        """From here the saga finishes what it started: no cancel, no guessing on failure.

        A cancel accepted before it is honoured here, even one that interrupted nothing.
        """
        self.honour_cancel()
        self._past_no_return = True

    def is_reset_run(self) -> bool:
        """Whether this run was reset from the Temporal UI (or its API) to an earlier point.

        An earlier run of the payment may have moved money already: a reset run takes no cancel,
        and a saga resumes where the ledger or the provider calls show an earlier run got to
        (its steps are idempotent up to there, but its decisions, made again, could differ).
        """
        info = workflow.info()
        return info.run_id != info.original_execution_run_id and workflow.patched(
            "reset-run-resumes"
        )

    def cancellable_again(self) -> None:
        """Take cancels again after the point of no return, while no money can move without the
        customer (a charge waiting for their authentication): the saga's compensations then undo
        what was sent. The next `point_of_no_return` closes it again."""
        self._past_no_return = False

    def honour_cancel(self) -> None:
        """End the steps (CancelledError) if a cancel was accepted that no step has obeyed yet.

        A cancel that reaches a running local step which then completes anyway (its effect was
        already on its way) is not raised by the SDK: the step's result comes back. Every local
        step before the point of no return is followed by this check, and so is the point itself.
        """
        accepted = self._cancel_requested and not (self._past_no_return or self._ending)
        if accepted and workflow.patched("honour-accepted-cancel"):
            raise asyncio.CancelledError("a cancel was accepted before the point of no return")

    async def local_step(self, step: Callable[[Any, Any], Awaitable[T]], arg: Any) -> T:
        """Run a local step (`LOCAL_STEP`), then honour a cancel accepted meanwhile."""
        result: T = await workflow.execute_local_activity_method(step, arg, **LOCAL_STEP)
        self.honour_cancel()
        return result

    async def run_to_clear_end(self, steps: Coroutine[Any, Any, PaymentState]) -> PaymentState:
        """Run the saga's steps; whatever happens, end with a clear status (see the module doc)."""
        self._steps = asyncio.ensure_future(steps)
        if self._cancel_requested:  # accepted before the steps were set: they never run
            self._steps.cancel()
        try:
            state = await self._shielded(self._steps)
        except asyncio.CancelledError:  # the steps were interrupted by a cancel in time
            self._ending = True
            state = await self._shielded(self._end_canceled())
        except Exception as err:  # any unplanned failure gets a clear end
            self._ending = True
            if self._cancel_requested and not self._past_no_return:
                # A step interrupted by the cancel reports it as its own failure.
                state = await self._shielded(self._end_canceled())
            else:
                state = await self._shielded(self._end_after_failure(err))
        await self._shielded(workflow.wait_condition(workflow.all_handlers_finished))
        if state.status == PaymentStatus.CANCELED and self._canceled_in_temporal:
            raise asyncio.CancelledError("canceled before its point of no return")
        return state

    async def _shielded(self, work: Awaitable[T]) -> T:
        """Await `work` to its end; a Temporal cancel meanwhile becomes a cancel request."""
        task = asyncio.ensure_future(work)
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done():
                    raise  # the work itself was canceled (a cancel before no return)
                self._canceled_in_temporal = True
                self.request_cancel("temporal")

    def request_cancel(self, source: str) -> bool:
        """Interrupt the saga's steps if it is still before its point of no return.

        A cancel in the saga's first workflow task may come before its steps are set: it is
        accepted, and the steps are canceled as soon as they are set (`run_to_clear_end`).
        """
        too_late = self._past_no_return or self._state.status.is_terminal or self.is_reset_run()
        if not too_late and self._steps is None:
            too_late = not workflow.patched("cancel-before-steps")
        if too_late:
            workflow.logger.warning(
                "cancel from %s ignored: %s is past its point of no return",
                source,
                self._payment_id,
            )
            workflow.upsert_memo({"cancel_ignored": source})
            return False
        if not self._cancel_requested:
            self._cancel_requested = True
            workflow.logger.info("cancel from %s: compensating %s", source, self._payment_id)
            if self._steps is not None:
                self._steps.cancel()
        return True

    async def _end_canceled(self) -> PaymentState:
        try:
            await self.compensations.run()
        except Exception as undo_err:  # canceled, but not undone: an operator decides
            return await self.await_resolution(
                f"canceled, then its compensation failed: {_describe(undo_err)}"
            )
        return await self.set_status(PaymentStatus.CANCELED)

    async def _end_after_failure(self, err: Exception) -> PaymentState:
        """Before the point of no return, undo and fail; after it, an operator decides."""
        reason = _describe(err)
        workflow.logger.error("step of %s failed: %s", self._payment_id, reason)
        if not self._past_no_return:
            try:
                await self.compensations.run()
            except Exception as undo_err:  # nothing more to try by itself: an operator decides
                reason = f"{reason}; then its compensation failed: {_describe(undo_err)}"
            else:
                code = (
                    FailureCode.PROVIDER_REJECTED
                    if error_type(err) == failures.PROVIDER_REJECTED
                    else None
                )
                return await self.fail(code or FailureCode.INTERNAL_ERROR, reason)
        return await self.await_resolution(reason)

    async def await_resolution(self, reason: str) -> PaymentState:
        """Wait in `requires_intervention` until an operator's resolution can be booked."""
        if self._resolution is not None and workflow.patched("resolution-that-failed-parks"):
            # The decision being booked led here (its compensation failed): it is not taken
            # again by itself; its update is told it failed, and a new decision is awaited.
            self._resolution = None
        state = await self.set_status(PaymentStatus.REQUIRES_INTERVENTION, reason=reason)
        if state.status.is_terminal:  # ended by a lost workflow task: nothing left to resolve
            return state
        while True:
            await workflow.wait_condition(lambda: self._resolution is not None)
            try:
                return await self.book_resolution()
            except Exception as err:  # the resolve update reports it; the payment stays parked
                workflow.logger.error("resolution of %s failed: %s", self._payment_id, err)
                self._resolution = None

    async def book(self, posting: Callable[[], Awaitable[Any]]) -> bool:
        """A ledger booking past the point of no return; False if an operator resolved `failed`.

        If the ledger refuses it, the payment waits in `requires_intervention`: an operator's
        `succeeded` tries the booking again (the cause fixed), `failed` makes the caller
        compensate and fail.
        """
        while True:
            try:
                await posting()
                return True
            except STEP_FAILED as err:
                workflow.logger.error("booking of %s failed: %s", self._payment_id, err)
                self._resolution = None  # a resolve that led here is told it could not be booked
                await self.set_status(PaymentStatus.REQUIRES_INTERVENTION, reason=_describe(err))
                await workflow.wait_condition(lambda: self._resolution is not None)
                if self._resolution_outcome() == "failed":
                    return False

    def _resolution_outcome(self) -> str | None:
        return None if self._resolution is None else self._resolution.outcome

    async def book_resolution(self) -> PaymentState:
        """End as the operator resolved: `failed` compensates, `succeeded` is taken as done."""
        assert self._resolution is not None
        if self._resolution.outcome == "succeeded":
            return await self.set_status(
                PaymentStatus.SUCCEEDED,
                reason=self._resolution.reason,
                posting=self._posting_for_success,
            )
        await self.compensations.run()
        return await self.fail(FailureCode.RESOLVED_BY_OPERATOR, self._resolution.reason)

    # -- what operators and the API see and do ------------------------------------------------

    def begin(self, payment: PaymentInput) -> None:
        """Called first by every saga's run: who we are and how we announce ourselves."""
        self.identify(payment.payment_id, payment.timings)

    def identify(self, saga_id: str, timings: SagaTimings, key_prefix: str | None = None) -> None:
        """The saga's id (its workflow's and its row's), its timings, and the prefix of the
        ledger keys it derives itself (its id, unless its keys must be found under another's)."""
        self._payment_id = saga_id
        self._key_prefix = key_prefix or saga_id
        self._timings = timings

    @workflow.query(name="state")
    def state(self) -> PaymentState:
        return self._state

    @workflow.update(name="cancel")
    async def cancel(self) -> PaymentState:
        """The customer's cancel: honoured until the saga's point of no return, refused after."""
        if not self.request_cancel("api"):
            raise ApplicationError("past the point of no return", type=failures.TOO_LATE_TO_CANCEL)
        await workflow.wait_condition(lambda: self._state.status.is_terminal)
        return self._state

    @cancel.validator
    def _cancel_allowed(self) -> None:
        if self._past_no_return or self._state.status.is_terminal:
            raise ApplicationError("past the point of no return", type=failures.TOO_LATE_TO_CANCEL)

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

    @workflow.update(name="review")
    async def review(self, decision: ReviewDecision) -> PaymentState:
        """An operator's approve or reject of a payment in review; refused once the deadline fired."""
        self._review = decision
        await workflow.wait_condition(
            lambda: self._review_taken is not None or not self._review_open
        )
        if self._review_taken is not decision:
            raise ApplicationError("the review deadline has passed", type=failures.REVIEW_TOO_LATE)
        await workflow.wait_condition(lambda: self._state.status != PaymentStatus.REQUIRES_REVIEW)
        return self._state

    @review.validator
    def _review_allowed(self, decision: ReviewDecision) -> None:
        if not self._review_open or self._review is not None:
            raise ApplicationError(
                "the payment is not waiting for review", type=failures.NOT_IN_REVIEW
            )
        if decision.decision not in ("approve", "reject"):
            raise ApplicationError(
                "decision must be approve or reject", type=failures.INVALID_DECISION
            )

    @workflow.update(name="resolve")
    async def resolve(self, decision: ResolveDecision) -> PaymentState:
        """An operator's resolution of a payment in `requires_intervention`.

        Answered once booked (the final state), or once its booking failed (refused); a booking
        that waits on the provider (a refund waiting for its charge's final word) is answered
        after `RESOLVE_ANSWER_WAIT` with the payment still `requires_intervention`: the decision
        is taken, and the payment ends when the provider answers.
        """
        self._resolution = decision

        def answered() -> bool:
            return self._state.status.is_terminal or self._resolution is not decision

        if workflow.patched("resolve-answers-while-booking"):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(answered, timeout=RESOLVE_ANSWER_WAIT)
            if self._resolution is decision:  # booked, or still being booked
                return self._state
        else:
            await workflow.wait_condition(answered)
        if not self._state.status.is_terminal:
            raise ApplicationError(
                "the resolution could not be booked; see the workflow's log",
                type=failures.RESOLVE_FAILED,
            )
        return self._state

    @resolve.validator
    def _resolve_allowed(self, decision: ResolveDecision) -> None:
        if self._state.status != PaymentStatus.REQUIRES_INTERVENTION or self._resolution:
            raise ApplicationError(
                "the payment does not require intervention",
                type=failures.NOT_REQUIRING_INTERVENTION,
            )
        if decision.outcome not in ("succeeded", "failed"):
            raise ApplicationError(
                "outcome must be succeeded or failed", type=failures.INVALID_OUTCOME
            )

    async def review_by_operator(self, reasons: list[str], deadline_seconds: float) -> str | None:
        """Wait in `requires_review` for an operator; the rejection reason, or None if approved.

        No decision before the deadline is a rejection; a decision after it is refused.
        """
        self._review_open = True  # before the status shows it: a decision may follow at once
        try:
            await self.set_status(PaymentStatus.REQUIRES_REVIEW, reason=", ".join(reasons))
            await workflow.wait_condition(
                lambda: self._review is not None, timeout=timedelta(seconds=deadline_seconds)
            )
        except TimeoutError:
            pass
        finally:
            self._review_open = False
        self._review_taken = self._review
        if self._review_taken is None:
            return "no review before the deadline"
        if self._review_taken.decision == "reject":
            return self._review_taken.reason or "rejected by an operator"
        await self.set_status(PaymentStatus.PROCESSING)
        return None

    # -- status ---------------------------------------------------------------------------------

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

    # -- steps shared by the sagas --------------------------------------------------------------

    async def check_kyc(self, customer_id: str) -> tuple[str, str | None] | None:
        """KYC and sanctions on the customer: None if approved, else (failure code, reason)."""
        kyc = await self.local_step(RiskActivities.check_kyc, KycInput(customer_id))
        return None if kyc.approved else (kyc.failure_code or FailureCode.KYC_REJECTED, kyc.reason)

    async def assess_risk(self, payment: RiskInput) -> RiskResult:
        """The fraud rules' decision (approve, review, decline), shown as a search attribute."""
        risk: RiskResult = await self.local_step(RiskActivities.assess_payment, payment)
        self._mirror_risk_decision(risk)
        return risk

    def _mirror_risk_decision(self, risk: RiskResult) -> None:
        decision = sa.RISK_DECISION.value_set(risk.decision)
        if self.batch_status_writes:
            self._attributes_unmirrored.append(decision)  # with the next status change
        else:
            workflow.upsert_search_attributes([decision])

    async def screen(self, payment: RiskInput) -> tuple[str, str | None] | None:
        """KYC, then the fraud rules, in one local step: None if both approve, else (failure
        code, reason). The decision is mirrored like `assess_risk`'s."""
        screening: Screening = await self.local_step(RiskActivities.screen_payment, payment)
        kyc, risk = screening.kyc, screening.risk
        if not kyc.approved or risk is None:
            return kyc.failure_code or FailureCode.KYC_REJECTED, kyc.reason
        self._mirror_risk_decision(risk)
        if risk.decision != "approve":
            return FailureCode.RISK_DECLINED, ", ".join(risk.reasons)
        return None

    async def hold_funds(self, hold_request: HoldFundsInput) -> Hold | None:
        """Reserve the funds; None when they are not there (its release: `releases_hold`)."""
        try:
            return await self.local_step(LedgerActivities.hold_funds, hold_request)
        except STEP_FAILED as err:
            if error_type(err) == failures.INSUFFICIENT_FUNDS:
                return None
            raise

    def releases_hold(self, hold_key: str) -> None:
        """Register the release of the saga's hold, found by its key, before any step runs.

        Before any step, not just before the hold: a workflow task can run local steps (the
        hold among them) and then be lost to a cancel that arrived meanwhile; its retry sees the
        cancel first and must still find and release that hold.
        """
        self.compensations.add(functools.partial(self.release_hold, hold_key))

    async def release_hold(self, hold_key: str) -> None:
        """Void the hold made under `hold_key`, found by that key, if it is still pending."""
        await workflow.execute_local_activity_method(
            LedgerActivities.release_hold,
            ReleaseHoldInput(f"{self._key_prefix}:void", hold_key),
            **LOCAL_STEP,
        )

    async def reverse_posting(self, transaction_key: str, step: str) -> None:
        """Reverse the ledger transaction posted under `transaction_key`, if it was posted."""
        await workflow.execute_local_activity_method(
            LedgerActivities.reverse_by_key,
            ReverseByKeyInput(f"{self._key_prefix}:reverse-{step}", transaction_key),
            **LOCAL_STEP,
        )


def _describe(err: BaseException) -> str:
    return f"{error_type(err) or type(err).__name__}: {err}"


def clear_end(
    steps: Callable[[Any, Any], Coroutine[Any, Any, PaymentState]],
) -> Callable[[Any, Any], Coroutine[Any, Any, PaymentState]]:
    """Decorates a saga's `run`: its steps, top to bottom, run to a clear end (module doc)."""

    @functools.wraps(steps)
    async def run(self: PaymentSaga, payment: Any) -> PaymentState:
        self.begin(payment)
        return await self.run_to_clear_end(steps(self, payment))

    return run
