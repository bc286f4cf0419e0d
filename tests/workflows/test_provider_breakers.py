"""The sagas with the providers' circuit breakers (real, on the test database): no call skipped
after it may have landed, no key sent to a second provider once a first may have it, and a
call the breaker skipped waited for, never polled.

Chaos found both: a deposit reset from the Temporal UI after its charge landed was skipped as
"not processed" at that provider (its new run's first attempt) and charged again at the other;
a refund whose resends an open breaker skipped counted them as resends that left no record, and
then polled for ever for a refund never sent, its hold kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.testing import WorkflowEnvironment

from activities.failures import PROVIDER_NOT_PROCESSED
from activities.providers import ChargeInput
from domain.payments import PaymentState, ResolveDecision
from paysaga.store.provider_health import ProviderBreakers
from providers.base import Outcome
from providers.health import BreakerPolicy
from tests.workflows.harness import AMOUNT, PROVIDERS, TIMINGS, Payment, SagaHarness

CARDS, BANK = PROVIDERS
# Open an hour once opened: a test closes a breaker itself, never by waiting.
POLICY = BreakerPolicy(open_seconds=3_600.0)
# A breaker's wait is capped by the polling cap: short, so that the saga tries again soon.
QUICK = dataclasses.replace(TIMINGS, poll_interval_max_seconds=1.0)
MAX_RESENDS = 3  # workflows/saga/provider_outcome.py


async def clear_breakers(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM provider_health WHERE provider_account = ANY(%s)", (PROVIDERS,)
        )


async def open_breaker(pool: AsyncConnectionPool[Any], account: str) -> None:
    """Open the account's breaker now, as a run of failed calls would."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO provider_health (provider_account, state, recent, opened_at)"
            " VALUES (%s, 'open', 'fffff', now()) ON CONFLICT (provider_account) DO UPDATE"
            " SET state = 'open', recent = 'fffff', opened_at = now()",
            (account,),
        )


@pytest_asyncio.fixture(loop_scope="session")
async def breaker_saga(
    time_skipping_env: WorkflowEnvironment, db_pool: AsyncConnectionPool[Any], task_queue: str
) -> AsyncIterator[SagaHarness]:
    """The sagas on the time-skipping server, with breakers."""
    await clear_breakers(db_pool)
    harness = SagaHarness(time_skipping_env, db_pool, task_queue, ProviderBreakers(db_pool, POLICY))
    try:
        async with harness.workers():
            yield harness
    finally:
        await clear_breakers(db_pool)


@pytest_asyncio.fixture(loop_scope="session")
async def live_breaker_saga(
    temporal_env: WorkflowEnvironment, db_pool: AsyncConnectionPool[Any], task_queue: str
) -> AsyncIterator[SagaHarness]:
    """The sagas on the Temporal dev server (which can reset a workflow), with breakers."""
    await clear_breakers(db_pool)
    harness = SagaHarness(temporal_env, db_pool, task_queue, ProviderBreakers(db_pool, POLICY))
    try:
        async with harness.workers():
            yield harness
    finally:
        await clear_breakers(db_pool)


async def reset_to_start(saga: SagaHarness, payment: Payment) -> Payment:
    """An operator's reset from the Temporal UI to the saga's first workflow task (as `make
    chaos` does): its steps run again in a new run. The payment, followed to that run."""
    handle = saga.client.get_workflow_handle(payment.id)
    history = await handle.fetch_history()
    first_task = next(
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    description = await handle.describe()
    await saga.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=saga.client.namespace,
            workflow_execution=WorkflowExecution(
                workflow_id=payment.id, run_id=description.run_id or ""
            ),
            reason="test: an operator's reset",
            workflow_task_finish_event_id=first_task,
            request_id=str(uuid.uuid4()),
        )
    )
    latest = saga.client.get_workflow_handle(payment.id, result_type=PaymentState)
    saga.started.append(latest)
    return Payment(payment.id, payment.customer_id, payment.currency, latest)


def charged_at(saga: SagaHarness, payment: Payment) -> list[str]:
    """The providers whose books hold a succeeded charge of the payment."""
    return sorted(
        provider
        for (provider, _), op in saga.books.operations.items()
        if op.kind == "charge" and op.reference == payment.id and op.outcome == Outcome.succeeded
    )


async def wait_charged(
    saga: SagaHarness, payment: Payment, providers: list[str], timeout: float = 30.0
) -> None:
    """Until the providers' books hold the payment's charge (a blocked step made its effect)."""
    async with asyncio.timeout(timeout):
        while charged_at(saga, payment) != providers:
            await asyncio.sleep(0.05)


async def wait_calls(saga: SagaHarness, step: str, n: int, timeout: float = 30.0) -> None:
    """Until the provider step was called at least `n` times (faulted or not)."""
    async with asyncio.timeout(timeout):
        while saga.faults.calls(step) < n:
            await asyncio.sleep(0.05)


async def test_reset_deposit_whose_charge_landed_is_not_skipped_and_charged_elsewhere(
    live_breaker_saga: SagaHarness, db_pool: AsyncConnectionPool[Any]
) -> None:
    saga = live_breaker_saga
    # The charge reaches cards and is taken; its answer is held while an operator resets the
    # saga and cards' breaker opens (other payments' calls time out).
    saga.faults.block("provider.charge")
    deposit = await saga.deposit(await saga.customer())
    await saga.faults.entered("provider.charge")
    await wait_charged(saga, deposit, [CARDS])
    await open_breaker(db_pool, CARDS)
    deposit = await reset_to_start(saga, deposit)
    saga.faults.release("provider.charge")

    seen = await saga.finished(deposit)

    assert (seen.status, seen.charged, seen.wallet_posted) == ("succeeded", AMOUNT, AMOUNT)
    assert charged_at(saga, deposit) == [CARDS]


async def test_reset_deposit_after_failover_is_not_charged_at_the_first_provider(
    live_breaker_saga: SagaHarness,
) -> None:
    saga = live_breaker_saga

    def at_cards(charge: ChargeInput) -> bool:
        return charge.provider == CARDS

    # Cards is down: it certainly does nothing, and the charge fails over to the bank, which
    # takes it; its answer is held while an operator resets the saga; cards is back meanwhile.
    saga.faults.fail("provider.charge", when=at_cards, times=1, error_type=PROVIDER_NOT_PROCESSED)
    saga.faults.then("provider.charge", "block")
    deposit = await saga.deposit(await saga.customer())
    await saga.faults.entered("provider.charge")
    await wait_charged(saga, deposit, [BANK])
    deposit = await reset_to_start(saga, deposit)
    saga.faults.release("provider.charge")

    seen = await saga.finished(deposit)

    assert (seen.status, seen.charged, seen.wallet_posted) == ("succeeded", AMOUNT, AMOUNT)
    assert charged_at(saga, deposit) == [BANK]


@pytest.mark.parametrize("kind", ["refund", "withdrawal"])
async def test_resend_skipped_by_an_open_breaker_waits_for_it_then_completes_once(
    breaker_saga: SagaHarness, db_pool: AsyncConnectionPool[Any], kind: str
) -> None:
    saga = breaker_saga
    step = "provider.refund" if kind == "refund" else "provider.payout"
    # Every attempt of the first call times out before reaching the provider (outcome unknown,
    # polled: no record), and cards' breaker is open: every resend is skipped, nothing sent.
    saga.faults.hang(step, times=TIMINGS.provider_attempts, after_effect=False)
    await open_breaker(db_pool, CARDS)
    customer = await saga.customer(funds=AMOUNT)
    if kind == "refund":
        payment = await saga.refund(customer, timings=QUICK)
    else:
        payment = await saga.withdrawal(customer, timings=QUICK)

    # It keeps trying while the breaker is open (a skipped resend sent nothing: it is no resend
    # after which the provider should have a record) ...
    await wait_calls(saga, step, TIMINGS.provider_attempts + MAX_RESENDS + 2)
    # ... and once the breaker closes, its next try is sent and completes.
    await clear_breakers(db_pool)
    seen = await saga.finished(payment)

    assert seen.status == "succeeded"
    moved = seen.refunded if kind == "refund" else seen.paid_out
    assert (moved, seen.wallet_posted, seen.wallet_held) == (AMOUNT, 0, 0)


async def test_resends_refused_while_their_breaker_flaps_reach_requires_intervention(
    breaker_saga: SagaHarness,
) -> None:
    """Found by make chaos: a deposit whose charge timed out at cards (outcome unknown), and
    whose every resend cards refused (503) while its breaker opened and reopened, resent for
    ever, never shown to an operator: each resend's retry was skipped by the breaker its own
    refusal opened, and a skipped resend waits for the breaker. A resend refused at the
    provider is a resend that left no record: after a few, the operator decides."""
    saga = breaker_saga
    assert saga.breakers is not None
    saga.breakers.policy = BreakerPolicy(minimum_calls=1, open_seconds=3_600.0)
    # The charge never reaches cards (every attempt times out first), and cards refuses it.
    saga.faults.hang("provider.charge", times=TIMINGS.provider_attempts, after_effect=False)
    timings = dataclasses.replace(QUICK, requires_intervention_after_seconds=2.0)
    deposit = await saga.deposit(await saga.customer(), method="pm_unavailable", timings=timings)

    await saga.wait_status(deposit, "requires_intervention", timeout=30.0)
    await deposit.handle.execute_update(
        "resolve", ResolveDecision("failed", "cards never took it"), result_type=PaymentState
    )
    seen = await saga.finished(deposit)

    assert (seen.status, seen.failure_code, seen.charged) == (
        "failed",
        "resolved_by_operator",
        0,
    )
