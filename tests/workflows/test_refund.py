"""The refund saga, step by step: a failure, a crash or a cancel at each step ends it clearly.

Point of no return: the refund request is sent to the provider. Before it, every failure or
cancel voids the hold and fails the refund; after it, the provider's outcome is resolved and the
hold posted once, or voided. A failed refund gives its amount back to the deposit's refundable
part; a succeeded one keeps it.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowExecutionStatus

from activities import failures
from domain.payments import ResolveDecision
from providers.base import Outcome
from tests.workflows.harness import AMOUNT, Payment, SagaHarness, Seen

REFUNDED = Seen("succeeded", refunded=AMOUNT)


def whole(failure_code: str, workflow: WorkflowExecutionStatus | None = None) -> Seen:
    """A failed refund that left the wallet as it was (the hold voided) and refunded nothing."""
    return Seen(
        "failed",
        failure_code,
        wallet_posted=AMOUNT,
        workflow=workflow or WorkflowExecutionStatus.COMPLETED,
    )


async def reserved(saga: SagaHarness, refund: Payment) -> int:
    """What the refund's deposit has reserved for its refunds (`payments.refunded_amount`)."""
    row = await saga.store.get_refund(refund.id)
    assert row is not None
    async with saga.store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT refunded_amount FROM payments WHERE id = %s", (row.payment_id,)
        )
        found = await cur.fetchone()
    assert found is not None
    return int(found[0])


async def deposit_of(saga: SagaHarness, refund: Payment) -> str:
    row = await saga.store.get_refund(refund.id)
    assert row is not None
    return row.payment_id


async def test_complete_refund(saga: SagaHarness) -> None:
    refund = await saga.refund(await saga.customer(funds=AMOUNT))
    assert await saga.finished(refund) == REFUNDED
    assert await reserved(saga, refund) == AMOUNT
    hold = await saga.refund_hold(refund)
    assert hold is not None and hold.status == "posted"


async def test_complete_partial_refund(saga: SagaHarness) -> None:
    refund = await saga.refund(
        await saga.customer(funds=AMOUNT), amount=AMOUNT // 4, deposit_amount=AMOUNT
    )
    assert await saga.finished(refund) == Seen(
        "succeeded", wallet_posted=AMOUNT - AMOUNT // 4, refunded=AMOUNT // 4
    )
    assert await reserved(saga, refund) == AMOUNT // 4


@pytest.mark.parametrize(
    ("step", "token", "expected"),
    [
        ("ledger.hold_funds", "pm_ok", whole("internal_error")),
        (None, "pm_reject", whole("provider_rejected")),
        (None, "pm_decline", whole("provider_declined")),
    ],
    ids=["hold", "refund-rejected", "refund-declined"],
)
async def test_fail_refund_at_step(
    saga: SagaHarness, step: str | None, token: str, expected: Seen
) -> None:
    if step:  # the hold is made, then its step fails: its release was registered before it
        saga.faults.fail(step, after_effect=True)
    refund = await saga.refund(await saga.customer(funds=AMOUNT), token=token)
    assert await saga.finished(refund) == expected
    assert await reserved(saga, refund) == 0
    hold = await saga.refund_hold(refund)
    assert hold is not None and hold.status == "voided"


async def test_fail_refund_without_funds(saga: SagaHarness) -> None:
    refund = await saga.refund(await saga.customer(funds=AMOUNT - 1))
    assert await saga.finished(refund) == Seen(
        "failed", "insufficient_funds", wallet_posted=AMOUNT - 1
    )
    assert await reserved(saga, refund) == 0


async def test_complete_refund_after_provider_timeout(saga: SagaHarness) -> None:
    """Every attempt of the refund call times out after refunding: polled, posted once."""
    saga.faults.hang("provider.refund", times=2)
    refund = await saga.refund(await saga.customer(funds=AMOUNT))
    assert await saga.finished(refund) == REFUNDED


async def test_complete_refund_after_late_answer(saga: SagaHarness) -> None:
    """The provider keeps the refund pending a while: polled until it answers."""
    refund = await saga.refund(await saga.customer(funds=AMOUNT), token="pm_pending")
    await saga.wait_status(refund, "processing")
    await asyncio.sleep(1.5)  # a few polls
    saga.books.settle(await deposit_of(saga, refund), Outcome.succeeded)
    assert await saga.finished(refund) == REFUNDED


async def test_fail_refund_declined_after_late_answer(saga: SagaHarness) -> None:
    refund = await saga.refund(await saga.customer(funds=AMOUNT), token="pm_pending")
    await saga.wait_status(refund, "processing")
    saga.books.settle(await deposit_of(saga, refund), Outcome.declined)
    assert await saga.finished(refund) == whole("provider_declined")
    assert await reserved(saga, refund) == 0


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("succeeded", REFUNDED), ("failed", whole("resolved_by_operator"))],
)
async def test_resolve_refund_after_failed_poll(
    saga: SagaHarness, outcome: str, expected: Seen
) -> None:
    """The provider's status cannot be read: the refund waits for an operator, hold in place."""
    saga.faults.fail("provider.final_status")
    refund = await saga.refund(await saga.customer(funds=AMOUNT), token="pm_pending")
    await saga.wait_status(refund, "requires_intervention")
    assert await saga.seen(refund) == Seen(
        "requires_intervention",
        wallet_posted=AMOUNT,
        wallet_held=AMOUNT,
        workflow=WorkflowExecutionStatus.RUNNING,
    )
    settled = Outcome.succeeded if outcome == "succeeded" else Outcome.declined
    saga.books.settle(await deposit_of(saga, refund), settled)
    await refund.handle.execute_update("resolve", ResolveDecision(outcome, "checked at the PSP"))
    assert await saga.finished(refund) == expected


async def test_resolve_refund_after_failed_posting_posts_once(saga: SagaHarness) -> None:
    """The posting fails after it was made (a crash after the commit): an operator's
    `succeeded` books it again, under the same key: the wallet is debited once."""
    saga.faults.fail("ledger.post_hold", after_effect=True, times=1)
    refund = await saga.refund(await saga.customer(funds=AMOUNT))
    await saga.wait_status(refund, "requires_intervention")
    await refund.handle.execute_update("resolve", ResolveDecision("succeeded", "refunded at PSP"))
    assert await saga.finished(refund) == REFUNDED


@pytest.mark.parametrize("source", ["api", "temporal"])
async def test_cancel_refund_before_provider_call(saga: SagaHarness, source: str) -> None:
    """Canceled while the hold is being made: the hold (made or not) is voided, nothing
    refunded; the refund shows `failed` `canceled` and its amount is refundable again."""
    saga.faults.block("ledger.hold_funds")
    refund = await saga.refund(await saga.customer(funds=AMOUNT))
    await saga.faults.entered("ledger.hold_funds")
    assert await saga.cancel(refund, source) is None
    workflow = (
        WorkflowExecutionStatus.CANCELED
        if source == "temporal"
        else WorkflowExecutionStatus.COMPLETED
    )
    assert await saga.finished(refund) == whole("canceled", workflow)
    assert await reserved(saga, refund) == 0


@pytest.mark.parametrize("source", ["api", "temporal"])
@pytest.mark.parametrize("step", ["provider.refund", "provider.final_status", "ledger.post_hold"])
async def test_refuse_cancel_of_refund_after_provider_call(
    saga: SagaHarness, step: str, source: str
) -> None:
    saga.faults.block(step)
    token = "pm_pending" if step == "provider.final_status" else "pm_ok"
    refund = await saga.refund(await saga.customer(funds=AMOUNT), token=token)
    await saga.faults.entered(step)
    refusal = await saga.cancel(refund, source)
    if source == "api":
        assert refusal == failures.TOO_LATE_TO_CANCEL
    else:
        assert await saga.cancel_ignored(refund) == "temporal"
    saga.books.settle(await deposit_of(saga, refund), Outcome.succeeded)
    saga.faults.release(step)
    assert await saga.finished(refund) == REFUNDED


async def test_cancel_refund_whose_release_fails_waits_for_an_operator(
    saga: SagaHarness,
) -> None:
    """A cancel whose compensation fails for good parks the refund instead of failing the saga."""
    saga.faults.fail("ledger.release_hold", times=1)
    saga.faults.block("ledger.hold_funds")
    refund = await saga.refund(await saga.customer(funds=AMOUNT))
    await saga.faults.entered("ledger.hold_funds")
    await refund.handle.cancel()
    await saga.wait_status(refund, "requires_intervention")

    await refund.handle.execute_update("resolve", ResolveDecision("failed", "released by hand"))

    assert await saga.finished(refund) == whole("resolved_by_operator")
    assert await reserved(saga, refund) == 0
