"""The reconciliation workflow, run by a Temporal Schedule: every provider against the ledger."""

from __future__ import annotations

import asyncio
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
OWN_ACCOUNT_ATTEMPTS = 3  # then the account waits for the next run


@dataclass
class ReconciliationInput:
    providers: list[str]  # the installation's; the merchants' own accounts are read at each run


@workflow.defn(name="Reconciliation")
class ReconciliationWorkflow:
    @workflow.run
    async def run(self, job: ReconciliationInput) -> list[ReconcileResult]:
        results = [await self._reconcile(provider) for provider in job.providers]
        if workflow.patched("reconcile-own-accounts"):
            # The merchants' own accounts, side by side and each on its own: one whose report
            # cannot be read (a wrong credential, its PSP down) is retried a few times, then left
            # to the next run, without holding back the others.
            accounts = await workflow.execute_activity_method(
                ReconciliationActivities.own_accounts,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            own = await asyncio.gather(
                *(self._reconcile(account, OWN_ACCOUNT_ATTEMPTS) for account in accounts),
                return_exceptions=True,
            )
            for account, result in zip(accounts, own, strict=True):
                if isinstance(result, ReconcileResult):
                    results.append(result)
                else:
                    workflow.logger.warning("%s not reconciled this run: %s", account, result)
        return results

    async def _reconcile(self, provider: str, attempts: int = 0) -> ReconcileResult:
        return await workflow.execute_activity_method(
            ReconciliationActivities.reconcile_provider,
            ReconcileInput(provider, f"{workflow.info().run_id}:{provider}"),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(minutes=1), maximum_attempts=attempts
            ),
        )
