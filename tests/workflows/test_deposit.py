"""The deposit saga, step by step: a failure and a cancel at each step end it clearly.

Point of no return: the charge request is sent. Each test asserts what a user sees: the
payment's status and failure code, the wallet, the provider's books, the workflow's status.
"""

from __future__ import annotations

import pytest
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)

from activities import failures
from domain.payments import PaymentState, ResolveDecision
from providers.base import Outcome
from tests.workflows.harness import AMOUNT, SagaHarness, Seen

CANCELED = WorkflowExecutionStatus.CANCELED
CHARGED = Seen("succeeded", wallet_posted=AMOUNT, charged=AMOUNT)


async def test_complete_deposit(saga: SagaHarness) -> None:
    payment = await saga.deposit(await saga.customer())
    assert await saga.finished(payment) == CHARGED


async def test_fail_deposit_declined_by_provider(saga: SagaHarness) -> None:
    payment = await saga.deposit(await saga.customer(), method="pm_decline")
    assert await saga.finished(payment) == Seen("failed", "provider_declined")


@pytest.mark.parametrize(
    ("step", "method", "expected"),
    [
        ("risk.screen_payment", "pm_ok", Seen("failed", "internal_error")),
        # The provider refuses the charge as invalid: final, nothing charged.
        (None, "pm_reject", Seen("failed", "provider_rejected")),
    ],
    ids=["kyc-and-risk", "charge-rejected"],
)
async def test_fail_deposit_at_step(
    saga: SagaHarness, step: str | None, method: str, expected: Seen
) -> None:
    if step:
        saga.faults.fail(step)
    payment = await saga.deposit(await saga.customer(), method=method)
    assert await saga.finished(payment) == expected


async def test_refund_deposit_whose_credit_the_ledger_refuses(saga: SagaHarness) -> None:
    """The ledger refuses the credit (nothing posted, no status written): the charge is refunded."""
    saga.faults.fail("payments.post_and_record_status", error_type=failures.POSTING_REFUSED)
    payment = await saga.deposit(await saga.customer())
    assert await saga.finished(payment) == Seen(
        "failed", "credit_failed", charged=AMOUNT, refunded=AMOUNT
    )


@pytest.mark.parametrize("charge_made", [True, False], ids=["charged", "never-arrived"])
async def test_complete_deposit_after_charge_timeout(saga: SagaHarness, charge_made: bool) -> None:
    """Every attempt of the charge times out: the outcome is polled, the charge made once."""
    saga.faults.hang("provider.charge", times=2, after_effect=charge_made)
    payment = await saga.deposit(await saga.customer())
    assert await saga.finished(payment) == CHARGED


async def test_complete_deposit_after_unexplained_charge_failure(saga: SagaHarness) -> None:
    """A charge failing for no stated reason may have been made: polled, then sent again once."""
    saga.faults.fail("provider.charge", times=1)
    payment = await saga.deposit(await saga.customer())
    assert await saga.finished(payment) == CHARGED


async def test_complete_deposit_after_poll_answers_late(saga: SagaHarness) -> None:
    """No webhook: the saga polls until the provider has an answer."""
    payment = await saga.deposit(await saga.customer(), method="pm_pending")
    await saga.wait_status(payment, "processing")
    saga.books.settle(payment.id, Outcome.succeeded)
    assert await saga.finished(payment) == CHARGED


@pytest.mark.parametrize("source", ["api", "temporal"])
async def test_cancel_deposit_before_charge(saga: SagaHarness, source: str) -> None:
    saga.faults.block("risk.screen_payment")
    payment = await saga.deposit(await saga.customer())
    await saga.faults.entered("risk.screen_payment")
    assert await saga.cancel(payment, source) is None
    workflow = CANCELED if source == "temporal" else WorkflowExecutionStatus.COMPLETED
    assert await saga.finished(payment) == Seen("canceled", workflow=workflow)


@pytest.mark.parametrize("source", ["api", "temporal"])
@pytest.mark.parametrize(
    "step", ["provider.charge", "provider.final_status", "payments.post_and_record_status"]
)
async def test_refuse_cancel_of_deposit_after_charge(
    saga: SagaHarness, step: str, source: str
) -> None:
    """Once the charge is sent, the API's cancel is refused and Temporal's is recorded, ignored."""
    saga.faults.block(step)
    method = "pm_pending" if step == "provider.final_status" else "pm_ok"
    payment = await saga.deposit(await saga.customer(), method=method)
    await saga.faults.entered(step)
    await saga.cancel_too_late(payment, source, step)
    assert await saga.finished(payment) == CHARGED


async def test_resolve_deposit_after_failed_poll_as_failed(saga: SagaHarness) -> None:
    """Polling fails for good after the charge: an operator finds it declined and resolves it."""
    saga.faults.fail("provider.final_status")
    payment = await saga.deposit(await saga.customer(), method="pm_pending")
    await saga.wait_status(payment, "requires_intervention")
    assert await saga.seen(payment) == Seen(
        "requires_intervention", workflow=WorkflowExecutionStatus.RUNNING
    )
    saga.books.settle(payment.id, Outcome.declined)
    await payment.handle.execute_update("resolve", ResolveDecision("failed", "declined at PSP"))
    assert await saga.finished(payment) == Seen("failed", "resolved_by_operator")


async def test_resolve_deposit_after_failed_poll_as_succeeded(saga: SagaHarness) -> None:
    saga.faults.fail("provider.final_status")
    payment = await saga.deposit(await saga.customer(), method="pm_pending")
    await saga.wait_status(payment, "requires_intervention")
    saga.books.settle(payment.id, Outcome.succeeded)
    await payment.handle.execute_update("resolve", ResolveDecision("succeeded", "paid at PSP"))
    assert await saga.finished(payment) == CHARGED


async def test_resolve_deposit_whose_credit_step_failed_unplanned(saga: SagaHarness) -> None:
    """The credit-and-succeeded step fails before its effect, for no planned reason: the payment
    waits for an operator, whose `succeeded` books the credit (once) with the status."""
    saga.faults.fail("payments.post_and_record_status", times=1)
    payment = await saga.deposit(await saga.customer())
    await saga.wait_status(payment, "requires_intervention")
    seen = await saga.seen(payment)
    assert (seen.wallet_posted, seen.charged) == (0, AMOUNT)  # charged, not credited yet
    await payment.handle.execute_update("resolve", ResolveDecision("succeeded", "checked"))
    assert await saga.finished(payment) == CHARGED


async def test_refund_deposit_resolved_failed_after_unplanned_credit_failure(
    saga: SagaHarness,
) -> None:
    """The same, resolved `failed`: the charge is refunded, nothing was credited."""
    saga.faults.fail("payments.post_and_record_status", times=1)
    payment = await saga.deposit(await saga.customer())
    await saga.wait_status(payment, "requires_intervention")
    await payment.handle.execute_update("resolve", ResolveDecision("failed", "checked"))
    assert await saga.finished(payment) == Seen(
        "failed", "resolved_by_operator", charged=AMOUNT, refunded=AMOUNT
    )


async def test_complete_deposit_whose_credit_step_answer_was_lost(saga: SagaHarness) -> None:
    """The step credits and writes `succeeded`, then its answer never comes (a worker crash):
    the step is run again after its timeout, and the credit, found by its key, is booked once."""
    saga.faults.hang("payments.post_and_record_status", times=1)
    payment = await saga.deposit(await saga.customer())
    assert await saga.finished(payment) == CHARGED


async def test_complete_deposit_whose_credit_step_failed_after_its_effect(
    saga: SagaHarness,
) -> None:
    """The step credits and writes `succeeded`, then fails for no planned reason: the saga finds
    the row final and ends `succeeded`, credited once, refunded never."""
    saga.faults.fail("payments.post_and_record_status", after_effect=True, times=1)
    payment = await saga.deposit(await saga.customer())
    assert await saga.finished(payment) == CHARGED


async def test_refund_deposit_resolved_failed_while_its_charge_is_pending(
    saga: SagaHarness,
) -> None:
    """An operator resolves `failed` while the charge is still pending at the provider, which
    later takes the money: the refund waits for the charge's final word, then gives it back."""
    saga.faults.fail("provider.final_status")  # its status unreadable: an operator decides
    payment = await saga.deposit(await saga.customer(), method="pm_pending")
    await saga.wait_status(payment, "requires_intervention")
    resolve = await payment.handle.start_update(
        "resolve",
        ResolveDecision("failed", "not paid at the PSP yet"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        result_type=PaymentState,
    )
    saga.books.settle(payment.id, Outcome.succeeded)  # the provider took the money after all
    await resolve.result()
    assert await saga.finished(payment) == Seen(
        "failed", "resolved_by_operator", charged=AMOUNT, refunded=AMOUNT
    )


async def test_park_deposit_whose_refund_the_provider_declines(saga: SagaHarness) -> None:
    """The ledger refuses the credit and the provider declines the refund: the compensation
    cannot finish by itself, so the payment waits in `requires_intervention` (it stayed
    `processing` forever); the operator's `failed` refunds once the provider takes it."""
    saga.faults.fail("payments.post_and_record_status", error_type=failures.POSTING_REFUSED)
    payment = await saga.deposit(await saga.customer(), refund_token="pm_decline")
    await saga.wait_status(payment, "requires_intervention")
    assert await saga.seen(payment) == Seen(
        "requires_intervention", charged=AMOUNT, workflow=WorkflowExecutionStatus.RUNNING
    )
    saga.books.refund_tokens[f"{payment.id}:charge"] = "pm_ok"  # the provider's cause fixed
    await payment.handle.execute_update("resolve", ResolveDecision("failed", "refund retried"))
    assert await saga.finished(payment) == Seen(
        "failed", "resolved_by_operator", charged=AMOUNT, refunded=AMOUNT
    )


async def test_no_credit_on_a_deposit_whose_row_is_already_failed(saga: SagaHarness) -> None:
    """The row turns `failed` (an operator's out-of-band resolution) while the charge's answer
    is on its way: the credit and the row's check are one transaction, so no credit lands on a
    failed payment."""
    saga.faults.block("provider.charge")
    payment = await saga.deposit(await saga.customer())
    await saga.faults.entered("provider.charge")
    await saga.store.update_payment(payment.id, "failed", failure_code="resolved_by_operator")
    saga.faults.release("provider.charge")
    assert await saga.finished(payment) == Seen("failed", "resolved_by_operator", charged=AMOUNT)
    assert await saga.ledger.find_transaction_by_key(f"{payment.id}:credit") is None


async def test_deposit_resolved_failed_whose_refund_is_declined_waits_for_a_new_decision(
    saga: SagaHarness,
) -> None:
    """The operator's `failed` refunds the charge, and the provider declines that refund: the
    resolve answers that it could not be booked and the payment waits, parked, for the next
    decision (no second refund is sent by itself); the next `failed` sends a new refund."""
    saga.faults.fail("provider.final_status")
    payment = await saga.deposit(
        await saga.customer(), method="pm_pending", refund_token="pm_decline"
    )
    await saga.wait_status(payment, "requires_intervention")
    saga.books.settle(payment.id, Outcome.succeeded)
    with pytest.raises(WorkflowUpdateFailedError):
        await payment.handle.execute_update("resolve", ResolveDecision("failed", "not paid"))
    assert await saga.seen(payment) == Seen(
        "requires_intervention", charged=AMOUNT, workflow=WorkflowExecutionStatus.RUNNING
    )
    assert saga.faults.calls("provider.refund_charge") == 2  # one per provider, none again
    saga.books.refund_tokens[f"{payment.id}:charge"] = "pm_ok"
    await payment.handle.execute_update("resolve", ResolveDecision("failed", "refund retried"))
    assert await saga.finished(payment) == Seen(
        "failed", "resolved_by_operator", charged=AMOUNT, refunded=AMOUNT
    )
