"""What operators decide: a review of a payment, a resolution of one that requires intervention."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from domain.payments import (
        FailureCode,
        PaymentState,
        PaymentStatus,
        ResolveDecision,
        ReviewDecision,
    )
    from workflows.saga.status import StatusKeeping
    from workflows.saga.steps import STEP_FAILED, describe

T = TypeVar("T")

# How long an operator's `resolve` waits for its booking before answering that it was taken.
RESOLVE_ANSWER_WAIT = timedelta(seconds=5)


class OperatorDecisions(StatusKeeping):
    """The `review` and `resolve` updates, and the saga's waits for them."""

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
                await self.set_status(PaymentStatus.REQUIRES_INTERVENTION, reason=describe(err))
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
