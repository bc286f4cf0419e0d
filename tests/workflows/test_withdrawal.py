"""The withdrawal saga, step by step: a failure and a cancel at each step end it clearly.

Point of no return: the payout request is sent. Before it, every failure or cancel voids the
hold; after it, the payout's outcome is resolved and the hold posted once, or voided.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities import failures
from domain.payments import ResolveDecision, ReviewDecision
from providers.base import Outcome
from tests.workflows.harness import (
    AMOUNT,
    BIG_AMOUNT,
    PROVIDERS,
    Operation,
    SagaHarness,
    Seen,
)

PAID = Seen("succeeded", paid_out=AMOUNT)


def refused(failure_code: str) -> Seen:
    """A failed payment that left the customer's funds untouched (the hold voided: the funds are back, nothing paid)."""
    return Seen("failed", failure_code, wallet_posted=AMOUNT)


async def test_complete_withdrawal(saga: SagaHarness) -> None:
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT))
    assert await saga.finished(payment) == PAID


@pytest.mark.parametrize(
    ("step", "destination", "expected"),
    [
        ("risk.check_kyc", "pm_ok", refused("internal_error")),
        ("ledger.hold_funds", "pm_ok", refused("internal_error")),
        ("risk.assess_payment", "pm_ok", refused("internal_error")),
        (None, "pm_reject", refused("provider_rejected")),
        (None, "pm_decline", refused("provider_declined")),
    ],
    ids=["kyc", "hold", "risk", "payout-rejected", "payout-declined"],
)
async def test_fail_withdrawal_at_step(
    saga: SagaHarness, step: str | None, destination: str, expected: Seen
) -> None:
    if step:  # the hold is made, then its step fails: its release was registered before it
        saga.faults.fail(step, after_effect=True)
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT), destination=destination)
    assert await saga.finished(payment) == expected


async def test_fail_withdrawal_without_funds(saga: SagaHarness) -> None:
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT - 1))
    assert await saga.finished(payment) == Seen(
        "failed", "insufficient_funds", wallet_posted=AMOUNT - 1
    )


async def test_complete_withdrawal_after_payout_timeout(saga: SagaHarness) -> None:
    """Every attempt of the payout times out after paying: polled, posted once, paid once."""
    saga.faults.hang("provider.payout", times=2)
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT))
    assert await saga.finished(payment) == PAID


async def test_resolve_withdrawal_after_failed_poll_as_failed(saga: SagaHarness) -> None:
    saga.faults.fail("provider.final_status")
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT), destination="pm_pending")
    await saga.wait_status(payment, "requires_intervention")
    assert await saga.seen(payment) == Seen(
        "requires_intervention",
        wallet_posted=AMOUNT,
        wallet_held=AMOUNT,
        workflow=WorkflowExecutionStatus.RUNNING,
    )
    saga.books.settle(payment.id, Outcome.declined)
    await payment.handle.execute_update("resolve", ResolveDecision("failed", "declined at PSP"))
    assert await saga.finished(payment) == refused("resolved_by_operator")


async def test_resolve_withdrawal_after_failed_posting_as_succeeded(saga: SagaHarness) -> None:
    """Paid, then the hold's posting fails: the payment waits for an operator, whose `succeeded`
    posts the hold (`PaymentSaga.book` tries the booking again), not only the status."""
    saga.faults.fail("ledger.post_hold", times=1)
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT))
    await saga.wait_status(payment, "requires_intervention")
    await payment.handle.execute_update("resolve", ResolveDecision("succeeded", "paid at PSP"))
    assert await saga.finished(payment) == PAID


@pytest.mark.parametrize("source", ["api", "temporal"])
@pytest.mark.parametrize(
    "step",
    ["risk.check_kyc", "ledger.hold_funds", "risk.assess_payment", "review"],
)
async def test_cancel_withdrawal_before_payout(saga: SagaHarness, step: str, source: str) -> None:
    """Cancelled before the payout is sent: the hold (made or not) is voided, nothing paid."""
    if step == "review":
        payment = await saga.withdrawal(await saga.customer(funds=BIG_AMOUNT), amount=BIG_AMOUNT)
        await saga.wait_status(payment, "requires_review")
    else:
        saga.faults.block(step)
        payment = await saga.withdrawal(await saga.customer(funds=BIG_AMOUNT), amount=BIG_AMOUNT)
        await saga.faults.entered(step)
    assert await saga.cancel(payment, source) is None
    workflow = (
        WorkflowExecutionStatus.CANCELED
        if source == "temporal"
        else WorkflowExecutionStatus.COMPLETED
    )
    assert await saga.finished(payment) == Seen(
        "canceled", wallet_posted=BIG_AMOUNT, workflow=workflow
    )


@pytest.mark.parametrize("source", ["api", "temporal"])
@pytest.mark.parametrize("step", ["provider.payout", "provider.final_status", "ledger.post_hold"])
async def test_refuse_cancel_of_withdrawal_after_payout(
    saga: SagaHarness, step: str, source: str
) -> None:
    saga.faults.block(step)
    destination = "pm_pending" if step == "provider.final_status" else "pm_ok"
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT), destination=destination)
    await saga.faults.entered(step)
    await saga.cancel_too_late(payment, source, step)
    assert await saga.finished(payment) == PAID


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ("approve", Seen("succeeded", paid_out=BIG_AMOUNT)),
        ("reject", Seen("failed", "review_rejected", wallet_posted=BIG_AMOUNT)),
    ],
)
async def test_review_withdrawal(saga: SagaHarness, decision: str, expected: Seen) -> None:
    payment = await saga.withdrawal(await saga.customer(funds=BIG_AMOUNT), amount=BIG_AMOUNT)
    await saga.wait_status(payment, "requires_review")
    await payment.handle.execute_update("review", ReviewDecision(decision, "checked"))
    assert await saga.finished(payment) == expected


async def test_reject_withdrawal_without_review_by_deadline(saga: SagaHarness) -> None:
    """No decision in 24 hours (skipped) is a rejection; a decision after it is refused."""
    payment = await saga.withdrawal(await saga.customer(funds=BIG_AMOUNT), amount=BIG_AMOUNT)
    await saga.wait_status(payment, "requires_review")
    rejected = Seen("failed", "review_rejected", wallet_posted=BIG_AMOUNT)
    assert await saga.finished(payment) == rejected
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await payment.handle.execute_update("review", ReviewDecision("approve", "too late"))
    assert await saga.seen(payment) == rejected


async def test_cancel_withdrawal_whose_release_fails_waits_for_an_operator(
    saga: SagaHarness,
) -> None:
    """A cancel whose compensation fails for good parks the payment instead of failing the saga."""
    saga.faults.fail("ledger.release_hold", times=1)
    payment = await saga.withdrawal(await saga.customer(funds=BIG_AMOUNT), amount=BIG_AMOUNT)
    await saga.wait_status(payment, "requires_review")
    await payment.handle.cancel()
    await saga.wait_status(payment, "requires_intervention")

    await payment.handle.execute_update("resolve", ResolveDecision("failed", "released by hand"))

    assert await saga.finished(payment) == Seen(
        "failed", "resolved_by_operator", wallet_posted=BIG_AMOUNT
    )


async def test_resend_unanswered_keeps_the_hold_while_the_first_payout_may_land(
    saga: SagaHarness,
) -> None:
    """The payout times out (unknown), the provider has no record of it yet, and its resend is
    answered "not processed" (a 503): the first call may still land, so the hold is kept and the
    outcome polled (it was voided and the withdrawal failed). The first call then lands."""
    saga.faults.hang("provider.payout", times=2, after_effect=False)  # both attempts unanswered
    saga.faults.then("provider.payout", "fail", error_type=failures.PROVIDER_NOT_PROCESSED)
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT))
    await saga.faults.entered("provider.payout")
    async with asyncio.timeout(20):  # two unanswered attempts, then the resend
        while saga.faults.calls("provider.payout") < 3:
            await asyncio.sleep(0.05)
    saga.books.operations[(PROVIDERS[0], f"{payment.id}:payout")] = Operation(
        "payout", payment.id, AMOUNT, "EUR", Outcome.succeeded
    )  # the first call lands at the provider
    assert await saga.finished(payment) == PAID


async def test_resends_refused_while_the_provider_was_down_go_again_once_it_is_back(
    saga: SagaHarness,
) -> None:
    """Found by make chaos: the payout's answer was lost (unknown) and the provider, down,
    refused every resend (503) and has no record of it. The saga only polled after a few
    resends, for a call the provider would never have: the withdrawal waited for an operator
    long after the provider was back. Resends go on, ever more spaced, and the payout is made
    once, when the provider takes it."""
    saga.faults.hang("provider.payout", times=2, after_effect=False)  # both attempts unanswered
    down = saga.faults.then("provider.payout", "fail", error_type=failures.PROVIDER_NOT_PROCESSED)
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT))
    async with asyncio.timeout(60):  # two unanswered attempts, then more resends than MAX_RESENDS
        while saga.faults.calls("provider.payout") < 2 + 3 + 2:
            await asyncio.sleep(0.05)
    assert saga.books.total("payout", payment.id) == 0
    down.times = 0  # the provider is back: the next resend is taken

    assert await saga.finished(payment) == PAID
