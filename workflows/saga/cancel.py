"""A clear end on every path: cancels before the point of no return, and unplanned failures.

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
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from domain.payments import (
        FailureCode,
        PaymentState,
        PaymentStatus,
    )
    from workflows.saga.operator import OperatorDecisions
    from workflows.saga.steps import describe, error_type

T = TypeVar("T")


class ClearEnd(OperatorDecisions):
    """The saga's frame: its steps run to a clear end on cancel and on unplanned failure."""

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
                f"canceled, then its compensation failed: {describe(undo_err)}"
            )
        return await self.set_status(PaymentStatus.CANCELED)

    async def _end_after_failure(self, err: Exception) -> PaymentState:
        """Before the point of no return, undo and fail; after it, an operator decides."""
        reason = describe(err)
        workflow.logger.error("step of %s failed: %s", self._payment_id, reason)
        if not self._past_no_return:
            try:
                await self.compensations.run()
            except Exception as undo_err:  # nothing more to try by itself: an operator decides
                reason = f"{reason}; then its compensation failed: {describe(undo_err)}"
            else:
                code = (
                    FailureCode.PROVIDER_REJECTED
                    if error_type(err) == failures.PROVIDER_REJECTED
                    else None
                )
                return await self.fail(code or FailureCode.INTERNAL_ERROR, reason)
        return await self.await_resolution(reason)

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


def clear_end(
    steps: Callable[[Any, Any], Coroutine[Any, Any, PaymentState]],
) -> Callable[[Any, Any], Coroutine[Any, Any, PaymentState]]:
    """Decorates a saga's `run`: its steps, top to bottom, run to a clear end (module doc)."""

    @functools.wraps(steps)
    async def run(self: ClearEnd, payment: Any) -> PaymentState:
        self.begin(payment)
        return await self.run_to_clear_end(steps(self, payment))

    return run
