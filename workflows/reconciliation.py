"""The reconciliation workflow, run by a Temporal Schedule: every provider against the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import (
        ReconcileInput,
        ReconcileResult,
        ReconciliationActivities,
    )

SCHEDULE_ID = "paysaga-reconciliation"


@dataclass
class ReconciliationInput:
    providers: list[str]  # the installation's; the merchants' own accounts are read at each run


@workflow.defn(name="Reconciliation")
class ReconciliationWorkflow:
    @workflow.run
    async def run(self, job: ReconciliationInput) -> list[ReconcileResult]:
        results = []
        providers = list(job.providers)
        if workflow.patched("reconcile-own-accounts"):
            providers += await workflow.execute_activity_method(
                ReconciliationActivities.own_accounts,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
        for provider in providers:
            results.append(
                await workflow.execute_activity_method(
                    ReconciliationActivities.reconcile_provider,
                    ReconcileInput(provider, f"{workflow.info().run_id}:{provider}"),
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
                )
            )
        return results
