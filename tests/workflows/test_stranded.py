"""Sagas terminated from the Temporal UI: the sweep parks their payments, an operator resolves them.

A saga's workflow that closes (terminated, timed out, reset away) while its row is not terminal
must not strand the payment: the sweep parks it in `requires_intervention` with its holds kept,
and the operator's resolve books the decision without the saga (a `PaymentResolution` workflow
that finds everything by the saga's idempotency keys), through the API's own code path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from domain.errors import Conflict
from domain.refunds import refund_key_prefix
from ledger.models import AccountKind, HoldStatus
from tests.workflows.harness import (
    AMOUNT,
    PROVIDERS,
    Payment,
    SagaHarness,
    start_time_skipping_server,
)
from tests.workflows.stranded_harness import StrandedHarness, resolve, sweep

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def terminating_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own. Terminating a workflow while one of its
    activities runs stops that server's clock for good (its count of work in progress is never
    decremented): on the session's server, every later test waiting on a timer would hang."""
    env = await start_time_skipping_server()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(loop_scope="session")
async def saga(
    terminating_env: WorkflowEnvironment, sweep_db_pool: AsyncConnectionPool[Any], task_queue: str
) -> AsyncIterator[StrandedHarness]:
    harness = StrandedHarness(terminating_env, sweep_db_pool, task_queue)
    async with harness.workers():
        yield harness


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def row(saga: SagaHarness, payment: Payment) -> tuple[str, str | None, str | None]:
    """The payment's (or refund's) status, failure code and reason, as the API shows them."""
    found = await saga.store.get_refund(payment.id) or await saga.store.get_payment(payment.id)
    assert found is not None
    return found.status, found.failure_code, found.failure_reason


async def wallet(saga: SagaHarness, customer_id: str, currency: str = "EUR") -> tuple[int, int]:
    balance = await saga.ledger.balance(
        saga.merchant_id, customer_id, AccountKind.customer_wallet, currency
    )
    return balance.posted, balance.held


async def events(saga: SagaHarness, object_id: str) -> list[str]:
    async with saga.store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT type FROM events WHERE aggregate_id = %s ORDER BY written_order", (object_id,)
        )
        return [str(r[0]) for r in await cur.fetchall()]


async def terminate_and_sweep(saga: SagaHarness, payment: Payment) -> None:
    """Terminate the saga as an operator does in the Temporal UI, then let the sweep run."""
    await payment.handle.terminate("terminated from the Temporal UI")
    await sweep(saga)
    status, code, reason = await row(saga, payment)
    assert (status, code) == ("requires_intervention", None)
    assert reason is not None and "terminated" in reason


async def provider_took(saga: SagaHarness, payment: Payment) -> None:
    """Wait until the provider took the payment's call (its outcome still pending)."""

    async def taken() -> bool:
        current = await saga.store.get_payment(payment.id)
        return current is not None and current.provider is not None

    await until(taken)


async def test_terminated_withdrawal_is_parked_then_resolved_failed(
    saga: StrandedHarness,
) -> None:
    customer = await saga.customer(funds=AMOUNT)
    payment = await saga.withdrawal(customer, destination="pm_pending")
    await provider_took(saga, payment)

    await terminate_and_sweep(saga, payment)
    assert await wallet(saga, customer) == (AMOUNT, AMOUNT)  # the hold is kept
    assert "payment.requires_intervention" in await events(saga, payment.id)
    await sweep(saga)  # a second sweep changes nothing
    assert (await row(saga, payment))[0] == "requires_intervention"

    await resolve(saga, payment, "failed")

    assert (await row(saga, payment))[:2] == ("failed", "resolved_by_operator")
    hold = await saga.hold(payment)
    assert hold is not None and hold.status == HoldStatus.voided
    assert await wallet(saga, customer) == (AMOUNT, 0)
    assert (await events(saga, payment.id))[-1] == "payment.failed"


async def test_terminated_withdrawal_resolved_succeeded_posts_its_hold(
    saga: StrandedHarness,
) -> None:
    customer = await saga.customer(funds=AMOUNT)
    payment = await saga.withdrawal(customer, destination="pm_pending")
    await provider_took(saga, payment)
    await terminate_and_sweep(saga, payment)

    await resolve(saga, payment, "succeeded")

    assert (await row(saga, payment))[:2] == ("succeeded", None)
    assert await wallet(saga, customer) == (0, 0)
    posted = await saga.ledger.find_transaction_by_key(f"{payment.id}:post")
    assert posted is not None


async def test_terminated_deposit_after_its_charge_is_credited_once(saga: StrandedHarness) -> None:
    """Charged, then terminated before its credit: resolved succeeded, credited exactly once."""
    saga.faults.block("provider.charge")  # the charge is made, its answer held
    customer = await saga.customer()
    payment = await saga.deposit(customer)
    await saga.faults.entered("provider.charge")
    assert saga.books.total("charge", payment.id) == AMOUNT

    await terminate_and_sweep(saga, payment)
    assert await wallet(saga, customer) == (0, 0)

    await resolve(saga, payment, "succeeded")
    with pytest.raises(Conflict):  # resolved twice: the second is refused, nothing booked twice
        await resolve(saga, payment, "succeeded")

    assert (await row(saga, payment))[:2] == ("succeeded", None)
    assert await wallet(saga, customer) == (AMOUNT, 0)
    credit = await saga.ledger.find_transaction_by_key(f"{payment.id}:credit")
    assert credit is not None
    assert (await events(saga, payment.id))[-1] == "payment.succeeded"


async def test_terminated_deposit_after_its_charge_resolved_failed_is_refunded(
    saga: StrandedHarness,
) -> None:
    saga.faults.block("provider.charge")  # charged, terminated before its credit
    customer = await saga.customer()
    payment = await saga.deposit(customer)
    await saga.faults.entered("provider.charge")
    await terminate_and_sweep(saga, payment)

    await resolve(saga, payment, "failed")

    assert (await row(saga, payment))[:2] == ("failed", "resolved_by_operator")
    assert saga.books.total("refund", payment.id) == AMOUNT  # the charge went back
    assert await wallet(saga, customer) == (0, 0)


@pytest.mark.parametrize("outcome", ["failed", "succeeded"])
async def test_terminated_transfer_is_parked_then_resolved(
    saga: StrandedHarness, outcome: str
) -> None:
    customer = await saga.customer(funds=AMOUNT)
    payment = await saga.transfer(customer, account="pm_pending")
    await provider_took(saga, payment)  # converted, its payout pending
    assert await saga.ledger.find_transaction_by_key(f"{payment.id}:convert") is not None
    await terminate_and_sweep(saga, payment)

    await resolve(saga, payment, outcome)

    settled = await saga.ledger.find_transaction_by_key(f"{payment.id}:settle")
    if outcome == "failed":
        assert (await row(saga, payment))[:2] == ("failed", "resolved_by_operator")
        assert await wallet(saga, customer) == (AMOUNT, 0)  # the conversion was reversed
        assert settled is None
    else:
        assert (await row(saga, payment))[:2] == ("succeeded", None)
        assert await wallet(saga, customer) == (0, 0)
        assert settled is not None


@pytest.mark.parametrize("outcome", ["failed", "succeeded"])
async def test_terminated_refund_is_parked_then_resolved(
    saga: StrandedHarness, outcome: str
) -> None:
    customer = await saga.customer(funds=AMOUNT)
    refund = await saga.refund(customer, token="pm_pending")
    refund_row = await saga.store.get_refund(refund.id)
    assert refund_row is not None
    key = refund_key_prefix(refund_row.payment_id, refund.id)

    async def pending_at_provider() -> bool:
        return (PROVIDERS[0], f"{key}:refund") in saga.books.operations

    await until(pending_at_provider)
    await terminate_and_sweep(saga, refund)
    assert await wallet(saga, customer) == (AMOUNT, AMOUNT)
    assert "refund.requires_intervention" in await events(saga, refund.id)

    await resolve(saga, refund, outcome)

    hold = await saga.refund_hold(refund)
    assert hold is not None
    if outcome == "failed":
        assert (await row(saga, refund))[:2] == ("failed", "resolved_by_operator")
        assert hold.status == HoldStatus.voided
        assert await wallet(saga, customer) == (AMOUNT, 0)
    else:
        assert (await row(saga, refund))[:2] == ("succeeded", None)
        assert hold.status == HoldStatus.posted
        assert await wallet(saga, customer) == (0, 0)
