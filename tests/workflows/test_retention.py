"""Idempotency records are purged after their retention, by the Retention workflow; nothing else."""

from __future__ import annotations

import uuid

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.retention import RetentionActivities
from workflows.retention import RetentionInput, RetentionWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_expired_idempotency_records_are_purged_and_live_ones_kept(
    time_skipping_env: WorkflowEnvironment, db_pool: AsyncConnectionPool
) -> None:
    tag = uuid.uuid4().hex
    api_rows = {"answered-25h": "25 hours", "abandoned-25h": "25 hours", "answered-2h": "2 hours"}
    ledger_rows = {"done-50d": ("50 days", True), "open-50d": ("50 days", False)}
    ledger_rows |= {"done-10d": ("10 days", True)}
    async with db_pool.connection() as conn:
        for name, age in api_rows.items():
            await conn.execute(
                "INSERT INTO api_idempotency_keys"
                " (merchant_id, key, request_hash, response_status, created_at)"
                " VALUES (%s, %s, 'h', %s, now() - %s::interval)",
                (tag, name, None if name.startswith("abandoned") else 202, age),
            )
        for name, (age, done) in ledger_rows.items():
            await conn.execute(
                "INSERT INTO ledger_idempotency (key, operation, request_hash, result, created_at)"
                " VALUES (%s, 'post_transaction', 'h', %s, now() - %s::interval)",
                (f"{tag}:{name}", '{"id": 1}' if done else None, age),
            )
    queue = f"retention-{uuid.uuid4()}"

    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RetentionWorkflow],
        activities=[RetentionActivities(db_pool).purge_idempotency],
    ):
        result = await time_skipping_env.client.execute_workflow(
            RetentionWorkflow.run, RetentionInput(24, 45), id=queue, task_queue=queue
        )

    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT key FROM api_idempotency_keys WHERE merchant_id = %s", (tag,)
        )
        assert {row[0] for row in await cur.fetchall()} == {"answered-2h"}
        cur = await conn.execute(
            "SELECT key FROM ledger_idempotency WHERE key LIKE %s", (f"{tag}:%",)
        )
        kept = {row[0].split(":", 1)[1] for row in await cur.fetchall()}
        # The session's database is shared: the unfinished write goes, or every later ledger
        # audit of the session (a withdrawal test's, a wallet test's) would report it.
        await conn.execute("DELETE FROM ledger_idempotency WHERE key = %s", (f"{tag}:open-50d",))
        assert kept == {"open-50d", "done-10d"}  # an unfinished write is the audit's to report
    assert result.api_idempotency_keys >= 2 and result.ledger_idempotency >= 1
