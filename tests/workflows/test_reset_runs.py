"""Sagas reset from the Temporal UI to their first workflow task (as `make chaos` does).

A reset run starts over, but the world remembers the earlier run: its hold, its conversion, its
payout. Found by make chaos: a transfer converted by its first run was reset, and the new run
took a cancel (its own point of no return not reached yet): it ended `canceled` with the sender
debited; another ended `failed` with the conversion reversed while its payout had gone out. A
reset run takes no cancel, resumes past what an earlier run did irreversibly (the conversion, a
payout sent), and releases on failure the hold an earlier run made.
"""

from __future__ import annotations

from activities import failures
from tests.workflows.harness import AMOUNT, SagaHarness
from tests.workflows.test_provider_breakers import (  # noqa: F401 (a fixture)
    live_breaker_saga,
    reset_to_start,
)

FEE = AMOUNT // 100
TARGET = (AMOUNT - FEE) * 108 // 100  # the harness's transfer: EUR to USD at 1.08, 1% fee


async def test_reset_transfer_after_its_conversion_takes_no_cancel_and_pays_out_once(
    live_breaker_saga: SagaHarness,  # noqa: F811
) -> None:
    saga = live_breaker_saga
    saga.faults.block("provider.payout")  # converted; the payout made, its answer held
    transfer = await saga.transfer(await saga.customer(funds=AMOUNT * 2))
    await saga.faults.entered("provider.payout")
    saga.faults.block("risk.assess_payment")  # asked again, the new run would wait here
    transfer = await reset_to_start(saga, transfer)

    refusal = await saga.cancel(transfer, "api")
    saga.faults.release("risk.assess_payment")
    saga.faults.release("provider.payout")
    seen = await saga.finished(transfer)

    assert refusal == failures.TOO_LATE_TO_CANCEL
    assert (seen.status, seen.wallet_posted, seen.paid_out) == ("succeeded", AMOUNT, TARGET)


async def test_reset_transfer_after_its_conversion_keeps_the_earlier_decisions(
    live_breaker_saga: SagaHarness,  # noqa: F811
) -> None:
    saga = live_breaker_saga
    saga.faults.block("provider.payout")
    transfer = await saga.transfer(await saga.customer(funds=AMOUNT * 2))
    await saga.faults.entered("provider.payout")
    # Asked again, the fraud check would now decline: the new run must not ask, nor undo.
    saga.faults.fail("risk.assess_payment", error_type="InjectedDecline")
    transfer = await reset_to_start(saga, transfer)
    saga.faults.release("provider.payout")
    seen = await saga.finished(transfer)

    assert (seen.status, seen.wallet_posted, seen.paid_out) == ("succeeded", AMOUNT, TARGET)
    assert saga.faults.calls("risk.assess_payment") == 1


async def test_reset_transfer_before_its_conversion_that_fails_releases_the_earlier_hold(
    live_breaker_saga: SagaHarness,  # noqa: F811
) -> None:
    saga = live_breaker_saga
    saga.faults.hang("ledger.post_hold", after_effect=False)  # the hold made, not converted
    customer = await saga.customer(funds=AMOUNT * 2)
    transfer = await saga.transfer(customer)
    await saga.faults.entered("ledger.post_hold")
    saga.faults.fail("risk.check_kyc", error_type="InjectedKycDown")
    transfer = await reset_to_start(saga, transfer)
    seen = await saga.finished(transfer)

    assert (seen.status, seen.wallet_posted, seen.wallet_held) == ("failed", AMOUNT * 2, 0)
    assert seen.paid_out == 0


async def test_reset_transfer_while_its_earlier_conversion_is_on_its_way_moves_money_once(
    live_breaker_saga: SagaHarness,  # noqa: F811
) -> None:
    saga = live_breaker_saga
    # The earlier run's conversion is on its way (its step entered) when the reset run looks,
    # and asked again, KYC now fails. Whichever lands first, the new run's look or the
    # conversion, the sender is debited only if the beneficiary is paid.
    saga.faults.block("ledger.post_hold")
    customer = await saga.customer(funds=AMOUNT * 2)
    transfer = await saga.transfer(customer)
    await saga.faults.entered("ledger.post_hold")
    saga.faults.fail("risk.check_kyc", error_type="InjectedKycDown")
    transfer = await reset_to_start(saga, transfer)
    saga.faults.release("ledger.post_hold")
    seen = await saga.finished(transfer)

    assert (seen.status, seen.wallet_posted, seen.wallet_held, seen.paid_out) in (
        ("failed", AMOUNT * 2, 0, 0),
        ("succeeded", AMOUNT, 0, TARGET),
    )


async def test_reset_withdrawal_after_its_payout_was_sent_keeps_the_earlier_decisions(
    live_breaker_saga: SagaHarness,  # noqa: F811
) -> None:
    saga = live_breaker_saga
    saga.faults.block("provider.payout")  # sent and made; its answer held
    withdrawal = await saga.withdrawal(await saga.customer(funds=AMOUNT))
    await saga.faults.entered("provider.payout")
    saga.faults.fail("risk.assess_payment", error_type="InjectedDecline")
    withdrawal = await reset_to_start(saga, withdrawal)

    refusal = await saga.cancel(withdrawal, "api")
    saga.faults.release("provider.payout")
    seen = await saga.finished(withdrawal)

    assert refusal == failures.TOO_LATE_TO_CANCEL
    assert (seen.status, seen.wallet_posted, seen.wallet_held, seen.paid_out) == (
        "succeeded",
        0,
        0,
        AMOUNT,
    )


async def test_reset_deposit_after_its_charge_was_sent_keeps_its_screening(
    live_breaker_saga: SagaHarness,  # noqa: F811
) -> None:
    saga = live_breaker_saga
    saga.faults.block("provider.charge")  # charged; the answer held
    deposit = await saga.deposit(await saga.customer())
    await saga.faults.entered("provider.charge")
    # Screened again, the customer would now be refused: already charged, it must not be.
    saga.faults.fail("risk.screen_payment", error_type="InjectedRefusal")
    deposit = await reset_to_start(saga, deposit)
    saga.faults.release("provider.charge")
    seen = await saga.finished(deposit)

    assert (seen.status, seen.charged, seen.wallet_posted) == ("succeeded", AMOUNT, AMOUNT)
    assert saga.faults.calls("risk.screen_payment") == 1
