"""Merchant webhook deliveries as workflows: retried with backoff, given up on after three days.

An event the merchant does not take within three days, or refuses outright (a 4xx other than 408
and 429), goes to the dead-letter list; an operator redelivers it from there
(`POST /v1/ops/notifications/dead-letters/{event_id}/redeliver`) once the endpoint is fixed.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError, RetryState, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.merchant import DeadLetterInput, MerchantActivities
    from domain.payments import MerchantEvent

GIVE_UP_AFTER = timedelta(days=3)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
BOOKKEEPING = timedelta(seconds=30)


async def deliver(event: MerchantEvent) -> str | None:
    """Deliver the event; None when the merchant took it, else why it was given up on."""
    try:
        await workflow.execute_activity_method(
            MerchantActivities.notify,
            event,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=GIVE_UP_AFTER,
            retry_policy=RETRY,
        )
    except ActivityError as err:
        cause = err.cause
        if isinstance(cause, TimeoutError):  # timed out with no answer at all
            cause = cause.cause
        last = cause.message if isinstance(cause, FailureError) else "no answer"
        if err.retry_state in (RetryState.TIMEOUT, RetryState.MAXIMUM_ATTEMPTS_REACHED):
            return f"not taken within {GIVE_UP_AFTER.days} days (last: {last})"
        return last
    return None


@workflow.defn(name="MerchantNotification")
class MerchantNotificationWorkflow:
    """Started by a saga at each status change; outlives it (abandoned on the saga's close)."""

    @workflow.run
    async def run(self, event: MerchantEvent) -> str:
        reason = await deliver(event)
        if reason is None:
            return "delivered"
        await workflow.execute_activity_method(
            MerchantActivities.dead_letter,
            DeadLetterInput(event, reason),
            start_to_close_timeout=BOOKKEEPING,
        )
        return "dead_letter"


@workflow.defn(name="MerchantRedelivery")
class MerchantRedeliveryWorkflow:
    """An operator's redelivery of a dead-lettered event: out of the list, or back in it."""

    @workflow.run
    async def run(self, event: MerchantEvent) -> str:
        reason = await deliver(event)
        if reason is None:
            await workflow.execute_activity_method(
                MerchantActivities.redelivered, event, start_to_close_timeout=BOOKKEEPING
            )
            return "delivered"
        await workflow.execute_activity_method(
            MerchantActivities.dead_letter,
            DeadLetterInput(event, reason),
            start_to_close_timeout=BOOKKEEPING,
        )
        return "dead_letter"
