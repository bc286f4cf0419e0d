"""The orphan sweep, run by a Temporal Schedule: payments whose saga never started end `failed`,
payments whose saga closed unfinished are parked for an operator, bonuses get their timers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.payment_sweep import (
        SAGA_NOT_STARTED_WORKFLOW,
        BonusTimersInput,
        BonusTimersResult,
        FailOrphansInput,
        FailOrphansResult,
        ParkStrandedInput,
        ParkStrandedResult,
        PaymentSweepActivities,
        SagaNotStartedInput,
    )

SWEEP_SCHEDULE_ID = "paysaga-payment-sweep"
# A row its saga wrote this recently is not asked about (its saga is at work); with a sweep
# every minute, a terminated saga's payment is parked within 90 seconds.
STRANDED_QUIET_SECONDS = 30.0
SWEEP_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(minutes=1),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),
}


@dataclass
class PaymentSweepInput:
    grace_seconds: float


@dataclass
class PaymentSweepResult:
    orphans: FailOrphansResult = field(default_factory=FailOrphansResult)
    stranded: ParkStrandedResult = field(default_factory=ParkStrandedResult)
    bonus_timers: BonusTimersResult = field(default_factory=BonusTimersResult)


@workflow.defn(name="PaymentSweep")
class PaymentSweepWorkflow:
    @workflow.run
    async def run(self, sweep: PaymentSweepInput) -> PaymentSweepResult:
        orphans = await workflow.execute_activity_method(
            PaymentSweepActivities.fail_orphans, FailOrphansInput(sweep.grace_seconds), **SWEEP_STEP
        )
        if not workflow.patched("park-stranded-and-time-bonuses"):
            return PaymentSweepResult(orphans)  # a run started before these steps existed
        quiet_seconds = min(sweep.grace_seconds, STRANDED_QUIET_SECONDS)
        stranded = await workflow.execute_activity_method(
            PaymentSweepActivities.park_stranded, ParkStrandedInput(quiet_seconds), **SWEEP_STEP
        )
        bonus_timers = await workflow.execute_activity_method(
            PaymentSweepActivities.start_bonus_timers,
            BonusTimersInput(sweep.grace_seconds),
            **SWEEP_STEP,
        )
        return PaymentSweepResult(orphans, stranded, bonus_timers)


@workflow.defn(name=SAGA_NOT_STARTED_WORKFLOW)
class SagaNotStartedWorkflow:
    """Holds the workflow id of a payment the sweep failed, so that its saga can never start."""

    @workflow.run
    async def run(self, payment: SagaNotStartedInput) -> str:
        return payment.reason
