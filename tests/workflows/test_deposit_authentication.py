"""A deposit whose charge waits for the customer's authentication (3-D Secure, the bank's approval).

The fake provider's `pm_3ds` charge answers `pending`, waiting for its customer; the test plays
the customer and the provider: `books.settle` is what the authentication page decides at the
provider, `webhook` the event the provider then sends. Each test asserts what a user sees: the
payment's status, `next_action` and events, the wallet, the provider's books.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateStage

from activities import failures
from domain import search_attributes as sa
from providers.base import AUTHENTICATION_FAILED, Outcome
from tests.workflows.harness import AMOUNT, PROVIDERS, TIMINGS, Payment, SagaHarness, Seen

RETURN_URL = "https://shop.example/deposits/done"
WAITING = Seen("requires_action", workflow=WorkflowExecutionStatus.RUNNING)
CHARGED = Seen("succeeded", wallet_posted=AMOUNT, charged=AMOUNT)
# Polling backs off while the customer takes their time: the tests skip time explicitly.
PAST_TIMEOUT = timedelta(seconds=TIMINGS.authentication_timeout_seconds + 1)
# Charged, then refunded: never credited.
REFUNDED: dict[str, Any] = {"wallet_posted": 0, "charged": AMOUNT, "refunded": AMOUNT}


async def waiting_deposit(saga: SagaHarness, **options: Any) -> Payment:
    """A `pm_3ds` deposit, once it shows `requires_action`."""
    payment = await saga.deposit(
        await saga.customer(), method="pm_3ds", return_url=RETURN_URL, **options
    )
    await saga.wait_status(payment, "requires_action")
    return payment


async def event_types(saga: SagaHarness, payment: Payment) -> list[str]:
    """The payment's events in the merchant's feed, in order."""
    async with saga.store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT type FROM events WHERE aggregate_id = %s ORDER BY written_order", (payment.id,)
        )
        return [row[0] for row in await cur.fetchall()]


def charge_at_provider(saga: SagaHarness, payment: Payment) -> tuple[Outcome, str | None]:
    operation = saga.books.operations[(PROVIDERS[0], f"{payment.id}:charge")]
    return operation.outcome, operation.decline_code


async def test_deposit_waits_in_requires_action_with_next_action(saga: SagaHarness) -> None:
    payment = await waiting_deposit(saga)
    row = await saga.store.get_payment(payment.id)
    assert row is not None
    assert row.next_action == {
        "type": "redirect_to_url",
        "redirect_to_url": {
            "url": f"https://{PROVIDERS[0]}.test/authenticate/op_{payment.id}:charge",
            "return_url": RETURN_URL,
        },
    }
    assert row.provider == PROVIDERS[0]
    assert await saga.seen(payment) == WAITING
    described = await payment.handle.describe()
    assert described.typed_search_attributes.get(sa.PAYMENT_STATUS) == "requires_action"
    assert await event_types(saga, payment) == ["payment.created", "payment.requires_action"]


async def test_complete_deposit_authenticated(saga: SagaHarness) -> None:
    payment = await waiting_deposit(saga)
    saga.books.settle(payment.id, Outcome.succeeded)
    await saga.charge_event(payment, "succeeded")
    assert await saga.finished(payment) == CHARGED
    row = await saga.store.get_payment(payment.id)
    assert row is not None and row.next_action is None
    assert await event_types(saga, payment) == [
        "payment.created",
        "payment.requires_action",
        "payment.succeeded",
    ]


async def test_fail_deposit_authenticated_then_declined(saga: SagaHarness) -> None:
    payment = await waiting_deposit(saga)
    saga.books.settle(payment.id, Outcome.declined, "card_declined")
    await saga.charge_event(payment, "declined", "card_declined")
    assert await saga.finished(payment) == Seen("failed", "provider_declined")


async def test_fail_deposit_whose_authentication_failed(saga: SagaHarness) -> None:
    payment = await waiting_deposit(saga)
    saga.books.settle(payment.id, Outcome.declined, AUTHENTICATION_FAILED)
    await saga.charge_event(payment, "declined", AUTHENTICATION_FAILED)
    assert await saga.finished(payment) == Seen("failed", "authentication_failed")


async def test_complete_deposit_authenticated_when_webhook_lost(saga: SagaHarness) -> None:
    """No webhook: the saga polls the provider, and finds the charge succeeded."""
    payment = await waiting_deposit(saga)
    saga.books.settle(payment.id, Outcome.succeeded)
    assert await saga.finished(payment) == CHARGED


async def test_fail_deposit_whose_authentication_failed_when_webhook_lost(
    saga: SagaHarness,
) -> None:
    payment = await waiting_deposit(saga)
    saga.books.settle(payment.id, Outcome.declined, AUTHENTICATION_FAILED)
    assert await saga.finished(payment) == Seen("failed", "authentication_failed")


async def test_credit_deposit_once_when_webhook_comes_twice(saga: SagaHarness) -> None:
    """The final event twice and a stale one after it: one credit."""
    payment = await waiting_deposit(saga)
    saga.books.settle(payment.id, Outcome.succeeded)
    await saga.charge_event(payment, "succeeded")
    await saga.charge_event(payment, "succeeded")
    await saga.charge_event(payment, "pending", sequence=1)
    assert await saga.finished(payment) == CHARGED


async def test_abandon_deposit_without_authentication_in_time(saga: SagaHarness) -> None:
    """No outcome within the timeout: cancelled at the provider, failed, nothing charged."""
    payment = await waiting_deposit(saga)
    await saga.env.sleep(PAST_TIMEOUT)
    assert await saga.finished(payment) == Seen("failed", "authentication_abandoned")
    assert charge_at_provider(saga, payment) == (Outcome.declined, "canceled")


async def test_abandon_deposit_after_the_timeout_set(saga: SagaHarness) -> None:
    """The timeout is the deposit's own: still waiting just before it, abandoned after."""
    timings = dataclasses.replace(TIMINGS, authentication_timeout_seconds=3_600.0)
    payment = await waiting_deposit(saga, timings=timings)
    await saga.env.sleep(timedelta(seconds=3_000))
    assert await saga.seen(payment) == WAITING
    await saga.env.sleep(timedelta(seconds=601))
    assert await saga.finished(payment) == Seen("failed", "authentication_abandoned")


async def test_refund_late_success_of_abandoned_deposit(saga: SagaHarness) -> None:
    """The customer authenticates as the timeout fires: the cancel finds the charge succeeded;
    it is refunded, never credited (its webhook, arriving after, finds the saga ended: the
    API's webhook route takes it and changes nothing, tests/api/test_webhooks_ended.py)."""
    payment = await waiting_deposit(saga)
    saga.books.customer_first.add(f"{payment.id}:charge")
    await saga.env.sleep(PAST_TIMEOUT)
    assert await saga.finished(payment) == Seen("failed", "authentication_abandoned", **REFUNDED)


@pytest.mark.parametrize("source", ["api", "temporal"])
async def test_cancel_deposit_waiting_for_authentication(saga: SagaHarness, source: str) -> None:
    payment = await waiting_deposit(saga)
    assert await saga.cancel(payment, source) is None
    workflow = (
        WorkflowExecutionStatus.CANCELED
        if source == "temporal"
        else WorkflowExecutionStatus.COMPLETED
    )
    assert await saga.finished(payment) == Seen("canceled", workflow=workflow)
    assert charge_at_provider(saga, payment) == (Outcome.declined, "canceled")
    assert (await event_types(saga, payment))[-1] == "payment.canceled"


async def test_cancel_deposit_whose_customer_authenticated_first(saga: SagaHarness) -> None:
    """The page's outcome reaches the provider while the cancel is on its way: the cancel finds
    the charge succeeded, refunds it, and the payment ends `canceled`, never credited."""
    payment = await waiting_deposit(saga)
    saga.books.customer_first.add(f"{payment.id}:charge")
    assert await saga.cancel(payment, "api") is None
    assert await saga.finished(payment) == Seen("canceled", **REFUNDED)


async def test_cancel_deposit_when_webhook_arrives_during_the_cancel(saga: SagaHarness) -> None:
    """The provider's success event arrives while the saga is cancelling at the provider."""
    saga.faults.block("provider.cancel_authorization")
    payment = await waiting_deposit(saga)
    saga.books.customer_first.add(f"{payment.id}:charge")
    update = await payment.handle.start_update(
        "cancel", wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    await saga.faults.entered("provider.cancel_authorization")
    await saga.charge_event(payment, "succeeded")
    saga.faults.release("provider.cancel_authorization")
    await update.result()
    assert await saga.finished(payment) == Seen("canceled", **REFUNDED)


async def test_refuse_cancel_of_deposit_once_authenticated(saga: SagaHarness) -> None:
    """The outcome is known: past the point of no return again, the cancel is refused."""
    saga.faults.block("payments.post_and_record_status")
    payment = await waiting_deposit(saga)
    saga.books.settle(payment.id, Outcome.succeeded)
    await saga.charge_event(payment, "succeeded")
    await saga.faults.entered("payments.post_and_record_status")
    assert await saga.cancel(payment, "api") == failures.TOO_LATE_TO_CANCEL
    saga.faults.release("payments.post_and_record_status")
    assert await saga.finished(payment) == CHARGED


async def test_deposit_without_authentication_keeps_its_path(saga: SagaHarness) -> None:
    """A charge that needs no customer never shows `requires_action`."""
    payment = await saga.deposit(await saga.customer())
    assert await saga.finished(payment) == CHARGED
    assert "payment.requires_action" not in await event_types(saga, payment)


async def test_complete_deposit_by_webhook_when_status_unreadable(saga: SagaHarness) -> None:
    """Polling fails for good (the status cannot be read): the webhook still tells, in time."""
    saga.faults.fail("provider.final_status")
    payment = await waiting_deposit(saga)
    await saga.env.sleep(timedelta(seconds=60))  # past the webhook wait: the poll has failed
    assert saga.faults.calls("provider.final_status") == 1
    saga.books.settle(payment.id, Outcome.succeeded)
    await saga.charge_event(payment, "succeeded")
    assert await saga.finished(payment) == CHARGED
