"""The worker schedules the idempotency purge, once for its task queue."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError

from tests.stack import Stack, worker_schedule


@pytest.mark.asyncio(loop_scope="session")
async def test_worker_schedules_the_retention_purge(stack: Stack, temporal_client: Client) -> None:
    handle = await worker_schedule(temporal_client, f"paysaga-retention-{stack.task_queue}")

    for _ in range(300):  # the worker creates it as it starts
        try:
            described = await handle.describe()
            break
        except RPCError:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("no retention schedule")

    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == "Retention"
    assert action.task_queue == stack.task_queue
