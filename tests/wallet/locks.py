"""A stuck session for the wallet's failure tests: a customer's rows locked, a writer waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg_pool import AsyncConnectionPool


@asynccontextmanager
async def holding_accounts(
    pool: AsyncConnectionPool[Any], merchant_id: str, customer_id: str
) -> AsyncIterator[None]:
    """A transaction of the test's own holding the customer's wallet accounts locked, as a
    stuck session (an operator's open transaction, a slow saga step) would."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "SELECT id FROM ledger_accounts WHERE merchant_id = %s AND owner_id = %s FOR UPDATE",
            (merchant_id, customer_id),
        )
        yield


async def until_a_writer_waits_on_a_lock(pool: AsyncConnectionPool[Any]) -> None:
    """Return once a wallet writer's connection waits on a customer's row lock."""
    for _ in range(2_000):
        async with pool.connection() as conn:  # a transaction each: a new statistics snapshot
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE OF a%'"
            )
            row = await cur.fetchone()
        if row is not None and row[0] > 0:
            return
        await asyncio.sleep(0.01)  # polling an observed state, not a guess of its timing
    raise AssertionError("no wallet writer waits on a lock")
