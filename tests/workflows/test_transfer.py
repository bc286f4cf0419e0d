"""The transfer saga, step by step: a failure and a cancel at each step end it clearly.

Point of no return: the conversion is sent to the ledger. Before it, the hold is voided; after
it, the payout is seen through, and only a payout that certainly did not pay reverses it.
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowExecutionStatus

from domain.payments import ReviewDecision
from ledger.models import AccountKind
from tests.workflows.harness import (
    AMOUNT,
    BIG_AMOUNT,
    SagaHarness,
    Seen,
)

TARGET = (AMOUNT - AMOUNT // 100) * 108 // 100  # 1% fee, at 1.08
PAID = Seen("succeeded", paid_out=TARGET)


def refused(failure_code: str) -> Seen:
    """A failed payment that left the customer's funds untouched (nothing converted or held any more)."""
    return Seen("failed", failure_code, wallet_posted=AMOUNT)


async def test_complete_transfer_to_account(saga: SagaHarness) -> None:
    payment = await saga.transfer(await saga.customer(funds=AMOUNT))
    assert await saga.finished(payment) == PAID


async def test_complete_transfer_to_wallet(saga: SagaHarness) -> None:
    beneficiary = await saga.customer()
    payment = await saga.transfer(
        await saga.customer(funds=AMOUNT), account=None, beneficiary_id=beneficiary
    )
    assert await saga.finished(payment) == Seen("succeeded")
    usd = await saga.ledger.balance("mer_dev", beneficiary, AccountKind.customer_wallet, "USD")
    assert usd.posted == TARGET


@pytest.mark.parametrize(
    ("step", "account", "expected"),
    [
        ("risk.check_kyc", "pm_ok", refused("internal_error")),
        ("risk.screen_beneficiary", "pm_ok", refused("internal_error")),
        ("risk.assess_payment", "pm_ok", refused("internal_error")),
        ("ledger.hold_funds", "pm_ok", refused("internal_error")),
        # The conversion posted, then its step failed: it is reversed by its key.
        ("ledger.post_hold", "pm_ok", refused("internal_error")),
        (None, "pm_reject", refused("provider_rejected")),
        (None, "pm_decline", refused("provider_declined")),
    ],
    ids=["kyc", "screening", "risk", "hold", "convert", "payout-rejected", "payout-declined"],
)
async def test_fail_transfer_at_step(
    saga: SagaHarness, step: str | None, account: str, expected: Seen
) -> None:
    if step:
        saga.faults.fail(step, after_effect=True)
    payment = await saga.transfer(await saga.customer(funds=AMOUNT), account=account)
    assert await saga.finished(payment) == expected
    if step == "ledger.post_hold":  # the conversion was posted and reversed: the FX books are flat
        eur = await saga.ledger.find_transaction_by_key(f"{payment.id}:convert")
        assert eur is not None
        assert await saga.ledger.find_transaction_by_key(f"{payment.id}:reverse-convert")


async def test_fail_transfer_with_expired_quote(saga: SagaHarness) -> None:
    payment = await saga.transfer(await saga.customer(funds=AMOUNT), quote_seconds=-1)
    assert await saga.finished(payment) == refused("quote_expired")


async def test_complete_transfer_after_payout_timeout(saga: SagaHarness) -> None:
    saga.faults.hang("provider.payout", times=2)
    payment = await saga.transfer(await saga.customer(funds=AMOUNT))
    assert await saga.finished(payment) == PAID


@pytest.mark.parametrize("source", ["api", "temporal"])
@pytest.mark.parametrize(
    "step",
    [
        "risk.check_kyc",
        "risk.screen_beneficiary",
        "risk.assess_payment",
        "ledger.hold_funds",
        "review",
    ],
)
async def test_cancel_transfer_before_conversion(saga: SagaHarness, step: str, source: str) -> None:
    if step != "review":
        saga.faults.block(step)
    payment = await saga.transfer(await saga.customer(funds=BIG_AMOUNT), amount=BIG_AMOUNT)
    if step == "review":
        await saga.wait_status(payment, "requires_review")
    else:
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
@pytest.mark.parametrize(
    "step",
    ["ledger.post_hold", "provider.payout", "provider.final_status", "ledger.post_transaction"],
)
async def test_refuse_cancel_of_transfer_after_conversion(
    saga: SagaHarness, step: str, source: str
) -> None:
    saga.faults.block(step)
    account = "pm_pending" if step == "provider.final_status" else "pm_ok"
    payment = await saga.transfer(await saga.customer(funds=AMOUNT), account=account)
    await saga.faults.entered(step)
    await saga.cancel_too_late(payment, source, step)
    assert await saga.finished(payment) == PAID


async def test_fail_transfer_whose_quote_expired_in_review(saga: SagaHarness) -> None:
    """Approved after its quote expired (quote-recheck-after-review): the hold is voided."""
    payment = await saga.transfer(
        await saga.customer(funds=BIG_AMOUNT), amount=BIG_AMOUNT, quote_seconds=600
    )
    await saga.wait_status(payment, "requires_review")
    await saga.env.sleep(700)
    await payment.handle.execute_update("review", ReviewDecision("approve", "late approval"))
    assert await saga.finished(payment) == Seen("failed", "quote_expired", wallet_posted=BIG_AMOUNT)
