"""Fixtures of the saga tests: the time-skipping Temporal server, and a harness per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import SagaHarness, start_time_skipping_server


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, shared by the session: day-long waits take no time."""
    env = await start_time_skipping_server()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(loop_scope="session")
async def saga(
    time_skipping_env: WorkflowEnvironment, db_pool: AsyncConnectionPool[Any], task_queue: str
) -> AsyncIterator[SagaHarness]:
    """The sagas on the test's own task queue, their workers running for the whole test."""
    harness = SagaHarness(time_skipping_env, db_pool, task_queue)
    async with harness.workers():
        yield harness
