"""What a payment saga knows of itself: its status, its flags, cancels honoured, reset runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from activities.ledger import (
        PostTransactionInput,
    )
    from domain.payments import (
        PaymentState,
        PaymentStatus,
        ProviderEventSignal,
        ResolveDecision,
        ReviewDecision,
        SagaTimings,
    )
    from workflows.saga.steps import LOCAL_STEP, Compensations, PaymentInput

T = TypeVar("T")


class SagaState:
    """A saga's state and its point of no return; the floor every part of `PaymentSaga` stands on."""

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
