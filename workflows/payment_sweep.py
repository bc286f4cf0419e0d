"""The orphan sweep, run by a Temporal Schedule: payments whose saga never started end `failed`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.payment_sweep import (
        SAGA_NOT_STARTED_WORKFLOW,
        FailOrphansInput,
        FailOrphansResult,
        PaymentSweepActivities,
        SagaNotStartedInput,
    )

SWEEP_SCHEDULE_ID = "paysaga-payment-sweep"


@dataclass
class PaymentSweepInput:
    grace_seconds: float


@workflow.defn(name="PaymentSweep")
class PaymentSweepWorkflow:
    @workflow.run
    async def run(self, sweep: PaymentSweepInput) -> FailOrphansResult:
        return await workflow.execute_activity_method(
            PaymentSweepActivities.fail_orphans,
            FailOrphansInput(sweep.grace_seconds),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )


@workflow.defn(name=SAGA_NOT_STARTED_WORKFLOW)
class SagaNotStartedWorkflow:
    """Holds the workflow id of a payment the sweep failed, so that its saga can never start."""

    @workflow.run
    async def run(self, payment: SagaNotStartedInput) -> str:
        return payment.reason
