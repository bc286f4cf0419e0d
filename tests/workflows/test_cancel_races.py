"""Cancels that race the saga's steps: an accepted cancel is never lost, and money never moves
after it (issue 21, hole 1).

A cancel reaches a step that completes anyway (a commit already sent, an answer already on its
way): the SDK then returns the step's result and the cancel no longer interrupts anything. The
saga must still honour it at its point of no return: compensate and end `canceled`, with nothing
charged, paid out, converted or refunded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from domain.payments import PaymentState
from tests.workflows.harness import AMOUNT, Payment, SagaHarness, Seen

CANCELED = WorkflowExecutionStatus.CANCELED
COMPLETED = WorkflowExecutionStatus.COMPLETED


async def _deposit(saga: SagaHarness) -> Payment:
    return await saga.deposit(await saga.customer())


async def _withdrawal(saga: SagaHarness) -> Payment:
    return await saga.withdrawal(await saga.customer(funds=AMOUNT))


async def _transfer(saga: SagaHarness) -> Payment:
    return await saga.transfer(await saga.customer(funds=AMOUNT))


async def _refund(saga: SagaHarness) -> Payment:
    return await saga.refund(await saga.customer(funds=AMOUNT))


Start = Callable[[SagaHarness], Awaitable[Payment]]
# Each saga, and what a canceled payment leaves: nothing charged, paid out or refunded, the
# wallet as it was (a hold, if made, voided).
SAGAS: dict[str, tuple[Start, Seen]] = {
    "deposit": (_deposit, Seen("canceled")),
    "withdrawal": (_withdrawal, Seen("canceled", wallet_posted=AMOUNT)),
    "transfer": (_transfer, Seen("canceled", wallet_posted=AMOUNT)),
    "refund": (_refund, Seen("failed", "canceled", wallet_posted=AMOUNT)),
}
# Every local step of each saga before its point of no return.
STEPS = [
    ("deposit", "risk.screen_payment"),
    ("withdrawal", "risk.check_kyc"),
    ("withdrawal", "ledger.customer_debt"),
    ("withdrawal", "ledger.hold_funds"),
    ("withdrawal", "risk.assess_payment"),
    ("transfer", "risk.check_kyc"),
    ("transfer", "risk.screen_beneficiary"),
    ("transfer", "risk.assess_payment"),
    ("transfer", "ledger.hold_funds"),
    ("refund", "ledger.hold_funds"),
]


@pytest.mark.parametrize("source", ["api", "temporal"])
@pytest.mark.parametrize(("kind", "step"), STEPS)
async def test_cancel_reaching_a_step_that_completes_anyway_is_honoured(
    saga: SagaHarness, kind: str, step: str, source: str
) -> None:
    start, canceled = SAGAS[kind]
    saga.faults.block(step, past_cancel=True)
    payment = await start(saga)
    await saga.faults.entered(step)

    if source == "api":  # accepted (200 to the client), then the saga must keep its word
        update = await payment.handle.start_update(
            "cancel", wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=PaymentState
        )
    else:
        await payment.handle.cancel()
    await saga.faults.canceled(step)
    saga.faults.release(step)  # the step completes despite the cancel

    if source == "api":  # the cancel's answer: the saga ended canceled (a refund's row: failed)
        assert (await update.result()).status.value == "canceled"
    workflow = CANCELED if source == "temporal" else COMPLETED
    seen = await saga.finished(payment)
    assert seen == Seen(
        canceled.status, canceled.failure_code, canceled.wallet_posted, workflow=workflow
    )
    if kind != "deposit":  # a hold made before the cancel took effect is voided, never posted
        hold = await (saga.refund_hold(payment) if kind == "refund" else saga.hold(payment))
        assert hold is None or hold.status == "voided"
        if step == "ledger.hold_funds" or (kind, step) == ("withdrawal", "risk.assess_payment"):
            assert hold is not None  # made before the cancel took effect


async def test_cancel_before_the_saga_set_its_steps_cancels(
    time_skipping_env: WorkflowEnvironment, db_pool: AsyncConnectionPool[Any], task_queue: str
) -> None:
    """The cancel is in the saga's first workflow task, before its steps exist: it cancels
    (it was refused as too late)."""
    saga = SagaHarness(time_skipping_env, db_pool, task_queue)
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT))  # no worker yet
    cancel = asyncio.create_task(payment.handle.execute_update("cancel", result_type=PaymentState))
    await asyncio.sleep(0.5)  # the update waits in the server for the first workflow task
    async with saga.workers():
        state = await cancel
        assert state.status.value == "canceled"
        assert await saga.finished(payment) == Seen("canceled", wallet_posted=AMOUNT)
