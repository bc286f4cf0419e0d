"""The dispute saga: record a chargeback, withdraw it at once, let the merchant answer, book the
provider's verdict."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from activities.disputes import (
        AnswerDisputeInput,
        DisputeActivities,
        DisputeProviderActivities,
        DisputeStatusInput,
        DisputeVerdictInput,
        OpenDisputeInput,
        RecordDisputeInput,
    )
    from activities.ledger import LedgerActivities, PostTransactionInput
    from domain import search_attributes as sa
    from domain.disputes import (
        WORKFLOW_NAME,
        DisputeAnswer,
        DisputeEventSignal,
        DisputeInput,
        DisputeStatus,
        DisputeView,
    )
    from ledger.models import AccountKind, LineSpec, Split, Transaction
    from providers.base import DisputeState
    from workflows.saga import LOCAL_STEP, STEP_FAILED, error_type, provider_queue

T = TypeVar("T")
DUE_DATE_ACCEPTANCE = DisputeAnswer("accept", operator="evidence due date")


@workflow.defn(name=WORKFLOW_NAME)
class DisputeWorkflow:
    """A chargeback of a deposit, from the provider's first event to its verdict, booked once.

    The provider has taken the money when it reports the dispute, so there is nothing to cancel:
    the saga has no point of no return before which it could undo anything, and a cancel from
    the Temporal UI is recorded (memo `cancel_ignored`) and ignored. Clear ends: `won` (what was
    withdrawn, but the fee, is reinstated) or `lost` (it stays withdrawn); a step that fails in
    a way the saga has no plan for parks the dispute in `requires_intervention` until an operator
    sends the `retry` signal, and the steps run again (each finds its work by its key).

    Provider events arrive by the `dispute_event` signal, in any order and any number of times:
    the first says what is disputed, the newest (by sequence) wins, and the first verdict is
    final. Nothing moves backwards.
    """

    def __init__(self) -> None:
        self._facts: DisputeEventSignal | None = None  # the first event: what is disputed
        self._sequence = 0  # the newest event's
        self._verdict: DisputeStatus | None = None
        self._status = DisputeStatus.NEEDS_RESPONSE
        self._resume_status = DisputeStatus.NEEDS_RESPONSE  # where a retry picks up
        self._receivable = 0
        self._withdrawn = False
        self._answer: tuple[int, DisputeAnswer] | None = None  # the merchant's, until sent
        self._answers = 0  # tickets of the merchant's answers
        self._answered: dict[int, bool] = {}  # by ticket: taken by the provider?
        self._retry_requested = False
        self._dispute_id = ""

    # -- the saga ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, dispute: DisputeInput) -> str:
        self._dispute_id = dispute.dispute_id
        await self._shielded(workflow.wait_condition(lambda: self._facts is not None))
        while True:
            try:
                await self._shielded(self._steps(dispute))
                break
            except Exception as err:  # a clear end: an operator looks, then retries
                await self._shielded(self._await_retry(err))
        await self._shielded(workflow.wait_condition(workflow.all_handlers_finished))
        return self._status.value

    async def _steps(self, dispute: DisputeInput) -> None:
        facts = self._facts
        assert facts is not None
        if facts.currency != dispute.currency:
            raise ApplicationError(
                f"disputed in {facts.currency}, the deposit is in {dispute.currency}",
                type=failures.DISPUTE_MISMATCH,
                non_retryable=True,
            )
        recorded = await workflow.execute_local_activity_method(
            DisputeActivities.record,
            RecordDisputeInput(
                dispute.dispute_id,
                dispute.payment_id,
                dispute.provider,
                dispute.provider_dispute_id,
                facts.amount,
                facts.currency,
                facts.fee,
                facts.reason,
                facts.evidence_due_by,
            ),
            **LOCAL_STEP,
        )
        if DisputeStatus(recorded.status).is_final and not self._withdrawn:
            # An earlier run (since removed from Temporal's retention) booked it all: a stale
            # event started this one. Nothing moves.
            self._status = DisputeStatus(recorded.status)
            return

        # At once: the provider has already taken the amount and its fee.
        withdrawal = await self._book(
            "withdraw", dispute, -facts.amount, facts.fee, recorded.customer_part
        )
        self._receivable = -sum(
            e.amount for e in withdrawal.entries if e.kind == AccountKind.customer_receivable
        )
        await workflow.execute_local_activity_method(
            DisputeActivities.open,
            OpenDisputeInput(dispute.dispute_id, self._receivable),
            **LOCAL_STEP,
        )
        self._withdrawn = True
        if self._status == DisputeStatus.REQUIRES_INTERVENTION:
            await self._set_status(self._resume_status)

        verdict = await self._verdict_of(dispute)
        if verdict == DisputeStatus.WON:  # the amount comes back; the fee stays spent
            await self._book("reinstate", dispute, facts.amount, 0, recorded.customer_part)
        await self._set_status(verdict)

    async def _book(
        self, step: str, dispute: DisputeInput, amount: int, fee: int, customer_part: int
    ) -> Transaction:
        """Move the disputed amount (negative: out of the customer's books) and the fee.

        Against the provider's clearing account, as the provider's settlement lines do. The
        customer's part moves through a split: out of the wallet up to what is available, the
        shortfall as a debt (receivable); back in, the debt first, then the wallet. What the
        provider took beyond the customer's part (all of it for a deposit that never credited
        the wallet; what refunds or earlier disputes already gave back), and the fee, are the
        merchant's chargeback expense. A won dispute gives back the same parts.
        """
        m, currency = dispute.merchant_id, dispute.currency
        sign = -1 if amount < 0 else 1
        merchant_part = abs(amount) - customer_part
        lines = [
            LineSpec(
                m, dispute.provider, AccountKind.provider_clearing, currency, -amount - sign * fee
            )
        ]
        if merchant_part + fee:
            lines.append(
                LineSpec(
                    m,
                    dispute.house_owner_id,
                    AccountKind.chargeback_fees,
                    currency,
                    sign * (merchant_part + fee),
                )
            )
        wallet, debt = AccountKind.customer_wallet, AccountKind.customer_receivable
        first, rest = (wallet, debt) if amount < 0 else (debt, wallet)
        customer = dispute.customer_id
        split = (
            Split(m, currency, sign * customer_part, customer, first, customer, rest)
            if customer_part
            else None
        )
        transaction: Transaction = await workflow.execute_local_activity_method(
            LedgerActivities.post_transaction,
            PostTransactionInput(
                f"{dispute.payment_id}:dispute:{dispute.dispute_id}:{step}",
                lines,
                f"dispute {dispute.dispute_id} of {dispute.payment_id}: {step}",
                split=split,
            ),
            **LOCAL_STEP,
        )
        return transaction

    async def _verdict_of(self, dispute: DisputeInput) -> DisputeStatus:
        """The provider's verdict: after the merchant's answer, or the due date's acceptance."""
        assert self._facts is not None
        due = datetime.fromisoformat(self._facts.evidence_due_by)
        unsent = 0
        while self._verdict is None and self._status == DisputeStatus.NEEDS_RESPONSE:
            left = (due - workflow.now()).total_seconds()
            if self._answer is None and left > 0:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._answer is not None or self._verdict is not None,
                        timeout=timedelta(seconds=left),
                        timeout_summary="evidence due",
                    )
            elif self._answer is not None:
                ticket, answer = self._answer
                self._answered[ticket] = await self._send(dispute, answer)
                self._answer = None
            elif not await self._send(dispute, DUE_DATE_ACCEPTANCE):
                # No answer by the due date is an acceptance: sent until the provider takes it
                # (or shows it closed).
                unsent += 1
                await workflow.sleep(_backoff(dispute, unsent))
        if self._answer is not None:  # came while the dispute closed: not taken
            self._answered[self._answer[0]] = False
            self._answer = None
        while self._verdict is None:
            await self._poll_verdict(dispute)
        return self._verdict

    async def _send(self, dispute: DisputeInput, answer: DisputeAnswer) -> bool:
        """Send an answer to the provider; whether it took it. Not sent (the provider could not
        be reached) is not taken; what the provider shows afterwards is adopted either way."""
        timings = dispute.timings
        try:
            state: DisputeState = await workflow.execute_activity_method(
                DisputeProviderActivities.answer,
                AnswerDisputeInput(
                    dispute.provider, dispute.provider_dispute_id, answer.action, answer.text
                ),
                task_queue=provider_queue(dispute.provider),
                start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=timings.poll_interval_seconds),
                    maximum_attempts=timings.provider_attempts,
                    non_retryable_error_types=[failures.PROVIDER_REJECTED],
                ),
            )
        except STEP_FAILED as err:
            workflow.logger.warning("answer to %s not sent: %s", self._dispute_id, err)
            if error_type(err) == failures.PROVIDER_REJECTED:
                self._answer = None
                raise  # the provider does not know the dispute: an operator looks
            return False
        status = DisputeStatus(state.status.value)
        if status.is_final:
            self._verdict = self._verdict or status
        elif status == DisputeStatus.UNDER_REVIEW:
            await self._set_status(DisputeStatus.UNDER_REVIEW)
        if state.evidence_submitted_at is not None:
            return answer.action == "evidence"
        return answer.action == "accept" and status == DisputeStatus.LOST

    async def _poll_verdict(self, dispute: DisputeInput) -> None:
        """Wait for the verdict's webhook, then ask the provider, until one of them tells."""
        timings = dispute.timings
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._verdict is not None,
                timeout=timedelta(seconds=timings.webhook_wait_seconds),
            )
        if self._verdict is not None:
            return
        poll = workflow.start_activity_method(
            DisputeProviderActivities.verdict,
            DisputeVerdictInput(dispute.provider, dispute.provider_dispute_id),
            task_queue=provider_queue(dispute.provider),
            start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=timings.poll_interval_seconds),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=timings.poll_interval_max_seconds),
                non_retryable_error_types=[failures.PROVIDER_REJECTED],
            ),
        )
        await workflow.wait_condition(lambda: poll.done() or self._verdict is not None)
        if not poll.done():
            poll.cancel()
            return
        state: DisputeState = await poll  # a refusal (unknown dispute) raises: an operator looks
        self._verdict = self._verdict or DisputeStatus(state.status.value)

    async def _set_status(self, status: DisputeStatus) -> None:
        """Record a status on the row (with its event), then in the search attribute."""
        if status == self._status:
            return
        recorded = await workflow.execute_local_activity_method(
            DisputeActivities.record_status,
            DisputeStatusInput(self._dispute_id, status.value, self._sequence),
            **LOCAL_STEP,
        )
        # The row never moves backwards: it tells what the dispute is now.
        self._status = DisputeStatus(recorded) if recorded else status
        workflow.upsert_search_attributes([sa.DISPUTE_STATUS.value_set(self._status.value)])

    async def _await_retry(self, err: Exception) -> None:
        """Park the dispute for an operator, who fixes the cause and sends `retry`."""
        reason = f"{error_type(err) or type(err).__name__}: {err}"
        workflow.logger.error("dispute %s needs an operator: %s", self._dispute_id, reason)
        if self._status != DisputeStatus.REQUIRES_INTERVENTION:
            self._resume_status = self._status
        self._retry_requested = False
        await self._set_status(DisputeStatus.REQUIRES_INTERVENTION)
        workflow.upsert_memo({"intervention_reason": reason})
        await workflow.wait_condition(lambda: self._retry_requested)

    async def _shielded(self, work: Awaitable[T]) -> T:
        """Await `work` to its end: a Temporal cancel is recorded and ignored (see the class)."""
        task = asyncio.ensure_future(work)
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done():
                    raise
                workflow.logger.warning("cancel of dispute %s ignored", self._dispute_id)
                workflow.upsert_memo({"cancel_ignored": "temporal"})

    # -- what the provider, the merchant and operators send -------------------------------------

    @workflow.signal(name="dispute_event")
    def dispute_event(self, event: DisputeEventSignal) -> None:
        """Keep the first event's facts and the newest sequence; the first verdict is final."""
        if self._facts is None:
            self._facts = event
        self._sequence = max(self._sequence, event.sequence)
        status = DisputeStatus(event.status)
        if status.is_final and self._verdict is None:
            self._verdict = status

    @workflow.update(name="respond")
    async def respond(self, answer: DisputeAnswer) -> DisputeView:
        """The merchant's evidence or acceptance, sent to the provider; refused once not open.

        Answers when the dispute shows it: `under_review` after evidence (or already decided),
        `lost` after an acceptance.
        """
        self._answers += 1
        ticket = self._answers
        self._answer = (ticket, answer)
        await workflow.wait_condition(lambda: ticket in self._answered or self._answer is None)
        if not self._answered.pop(ticket, False):
            if self._status == DisputeStatus.NEEDS_RESPONSE and self._verdict is None:
                raise ApplicationError(
                    "the provider could not be reached; retry", type=failures.DISPUTE_ANSWER_FAILED
                )
            raise ApplicationError("the dispute is no longer open", type=failures.DISPUTE_NOT_OPEN)
        minimum = 2 if answer.action == "accept" else 1  # final, or at least under review
        await workflow.wait_condition(lambda: self._status.rank >= minimum)
        return DisputeView(self._status, self._receivable)

    @respond.validator
    def _respond_allowed(self, answer: DisputeAnswer) -> None:
        if answer.action not in ("evidence", "accept"):
            raise ApplicationError(
                "answer evidence or accept", type=failures.INVALID_DISPUTE_ANSWER
            )
        if (
            self._status != DisputeStatus.NEEDS_RESPONSE
            or self._verdict is not None
            or self._answer is not None
        ):
            raise ApplicationError("the dispute is no longer open", type=failures.DISPUTE_NOT_OPEN)

    @workflow.signal(name="retry")
    def retry(self) -> None:
        """An operator's go-ahead for a dispute in `requires_intervention`, its cause fixed."""
        self._retry_requested = True

    @workflow.query(name="state")
    def state(self) -> DisputeView:
        return DisputeView(self._status, self._receivable)


def _backoff(dispute: DisputeInput, attempt: int) -> timedelta:
    timings = dispute.timings
    seconds = min(timings.poll_interval_seconds * 2**attempt, timings.poll_interval_max_seconds)
    return timedelta(seconds=seconds)
