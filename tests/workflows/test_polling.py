"""An unknown provider outcome polled for weeks: bounded history, an operator, or a late answer."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus

from domain.payments import ResolveDecision
from providers.base import Outcome
from tests.workflows.harness import AMOUNT, TIMINGS, SagaHarness, Seen

# Production-like waits: an operator after one day, polls backing off to one per 4 hours.
DAY = 86_400.0
SLOW_PROVIDER = dataclasses.replace(
    TIMINGS,
    webhook_wait_seconds=30.0,
    poll_interval_seconds=2.0,
    poll_interval_max_seconds=4 * 3_600.0,
    requires_intervention_after_seconds=DAY,
)


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        ("resolve", Seen("failed", "resolved_by_operator")),
        ("provider", Seen("succeeded", wallet_posted=AMOUNT, charged=AMOUNT)),
    ],
)
async def test_poll_deposit_for_30_days(saga: SagaHarness, end: str, expected: Seen) -> None:
    """30 days of polling (skipped): requires_intervention after a day, a small history, an end."""
    payment = await saga.deposit(await saga.customer(), method="pm_pending", timings=SLOW_PROVIDER)
    await saga.wait_status(payment, "processing")
    await saga.env.sleep(timedelta(days=30))
    assert await saga.seen(payment) == Seen(
        "requires_intervention", workflow=WorkflowExecutionStatus.RUNNING
    )
    history = await payment.handle.fetch_history()
    assert len(history.events) < 200
    if end == "resolve":
        saga.books.settle(payment.id, Outcome.declined)
        await payment.handle.execute_update("resolve", ResolveDecision("failed", "declined"))
    else:
        saga.books.settle(payment.id, Outcome.succeeded)
    assert await saga.finished(payment) == expected


async def test_poll_deposit_whose_charge_keeps_failing(saga: SagaHarness) -> None:
    """Every send of the charge fails: it is sent again a bounded number of times, each later,
    then only polled (activity retries, no events): its history stops growing."""
    saga.faults.fail("provider.charge")
    payment = await saga.deposit(await saga.customer())
    await saga.env.sleep(timedelta(minutes=10))
    resent = len((await payment.handle.fetch_history()).events)
    await saga.env.sleep(timedelta(minutes=20))
    polled = len((await payment.handle.fetch_history()).events)
    assert (polled, polled < 400) == (resent, True)
    assert saga.faults.calls("provider.charge") == 1 + 3 + 8  # the first call, its resends
