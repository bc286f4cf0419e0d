"""One merchant webhook delivery as a workflow: retried with backoff until the merchant says 2xx."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.merchant import MerchantActivities
    from domain.payments import MerchantEvent


@workflow.defn(name="MerchantNotification")
class MerchantNotificationWorkflow:
    """Started by a saga at each status change; outlives it (abandoned on the saga's close)."""

    @workflow.run
    async def run(self, event: MerchantEvent) -> int:
        status: int = await workflow.execute_activity_method(
            MerchantActivities.notify,
            event,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(minutes=10),
            ),
        )
        return status
