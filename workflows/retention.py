"""The retention workflow, run by a Temporal Schedule: purge what is past its retention (idempotency
records and events, in one activity whose name predates the events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.retention import PurgeInput, PurgeResult, RetentionActivities


RETENTION_SCHEDULE_ID = "paysaga-retention"


@dataclass
class RetentionInput:
    api_idempotency_hours: int
    ledger_idempotency_days: int


@workflow.defn(name="Retention")
class RetentionWorkflow:
    @workflow.run
    async def run(self, job: RetentionInput) -> PurgeResult:
        result: PurgeResult = await workflow.execute_activity_method(
            RetentionActivities.purge_idempotency,
            PurgeInput(job.api_idempotency_hours, job.ledger_idempotency_days),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )
        return result
