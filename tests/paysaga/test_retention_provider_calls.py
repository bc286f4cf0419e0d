"""Where provider calls were sent is kept as long as ledger records, then purged."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from paysaga.retention import purge_idempotency_records

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_provider_calls_past_the_ledger_retention_are_purged_and_recent_ones_kept(
    db_pool: AsyncConnectionPool[Any],
) -> None:
    old, recent = (f"dep_{uuid.uuid4().hex[:16]}:charge" for _ in range(2))
    async with db_pool.connection() as conn:
        for key, age_days in ((old, 31), (recent, 29)):
            await conn.execute(
                "INSERT INTO provider_calls (idempotency_key, provider_account, state, updated_at)"
                " VALUES (%s, 'sandbox-cards', 'sent', now() - make_interval(days => %s))",
                (key, age_days),
            )

    deleted = await purge_idempotency_records(db_pool, api_hours=24, ledger_days=30)

    assert deleted["provider_calls"] >= 1
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT idempotency_key FROM provider_calls WHERE idempotency_key = ANY(%s)",
            ([old, recent],),
        )
        assert [key for (key,) in await cur.fetchall()] == [recent]
