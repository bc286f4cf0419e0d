"""Provider calls run on a task queue per provider, so that a slow provider starves no other."""

from __future__ import annotations

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_provider_calls_are_scheduled_on_the_providers_own_queue(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 700,
        "currency": "EUR",
        "payment_method": "pm_primary_down",  # cards refuses, bank takes it
    }
    payment = (await post_payment(api, "/v1/deposits", body)).json()
    assert (await wait_terminal(api, payment["id"]))["status"] == "succeeded"

    history = await temporal_env.client.get_workflow_handle(payment["id"]).fetch_history()
    scheduled = [
        (
            e.activity_task_scheduled_event_attributes.activity_type.name,
            e.activity_task_scheduled_event_attributes.task_queue.name,
        )
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == [
        ("provider.charge", f"{stack.task_queue}.provider.sandbox-cards"),
        ("provider.charge", f"{stack.task_queue}.provider.sandbox-bank"),
    ]
