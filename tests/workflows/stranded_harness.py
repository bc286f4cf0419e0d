"""The saga harness with the sweep's and the resolution's activities: sagas terminated from the
Temporal UI, swept, then resolved by an operator. Used by tests/workflows/test_stranded.py and by
the history capture of tests/histories."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from temporalio.client import WorkflowHandle

from activities.payment_sweep import PaymentSweepActivities
from activities.resolution import ResolutionActivities
from api.routes.payments import resolve_without_saga
from domain.errors import Conflict
from paysaga.payment_sweep import SweepBooks
from tests.workflows.harness import PROVIDERS, TIMINGS, Payment, SagaHarness
from workflows.payment_sweep import PaymentSweepInput, PaymentSweepWorkflow
from workflows.resolution import ResolutionInput, resolution_workflow_id


class StrandedHarness(SagaHarness):
    """The saga harness, its worker also running the sweep's and the resolution's activities."""

    def _activities(self) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        local, calls = super()._activities()
        sweep = PaymentSweepActivities(self.store, SweepBooks(self.store.pool))
        resolution = ResolutionActivities(self.store, self.ledger)
        return [
            *local,
            sweep.fail_orphans,
            sweep.park_stranded,
            sweep.start_bonus_timers,
            resolution.facts,
        ], calls


async def sweep(saga: SagaHarness) -> WorkflowHandle[Any, Any]:
    """One run of the orphan sweep, as its schedule starts it (no grace: every row is old)."""
    handle = await saga.client.start_workflow(
        PaymentSweepWorkflow.run,
        PaymentSweepInput(grace_seconds=0),
        id=f"sweep-{uuid.uuid4()}",
        task_queue=saga.task_queue,
    )
    await handle.result()
    return handle


async def resolve(saga: SagaHarness, payment: Payment, outcome: str) -> None:
    """The operator's resolve of a payment whose saga is closed, as the API sends it."""
    await resolve_without_saga(
        saga.client,
        saga.task_queue,
        ResolutionInput(
            payment.id, outcome, "checked with the provider", "ops", list(PROVIDERS), TIMINGS
        ),
        Conflict(f"{payment.id} does not require intervention"),
    )


def resolution_handle(saga: SagaHarness, payment: Payment) -> WorkflowHandle[Any, Any]:
    """The resolution workflow of a payment whose saga is closed."""
    return saga.client.get_workflow_handle(resolution_workflow_id(payment.id))
