"""Fixtures of the ledger tests: an engine on the session database, fresh owners per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger


@pytest.fixture
def ledger(db_pool: AsyncConnectionPool) -> Ledger:
    """The ledger engine on the session's database."""
    return Ledger(db_pool)


NewId = Callable[[str], str]


@pytest.fixture
def new_id() -> NewId:
    """A new unique owner id or idempotency key at every call, so tests never collide."""
    return lambda name: f"{name}-{uuid.uuid4().hex[:16]}"


@pytest_asyncio.fixture
async def two_merchants(db_pool: AsyncConnectionPool) -> tuple[str, str]:
    """Two new merchants (rows of `merchants`, which every ledger account references)."""
    ids = (f"mer_a_{uuid.uuid4().hex[:12]}", f"mer_b_{uuid.uuid4().hex[:12]}")
    async with db_pool.connection() as conn:
        for merchant_id in ids:
            await conn.execute(
                "INSERT INTO merchants (id, name) VALUES (%s, %s)", (merchant_id, merchant_id)
            )
    return ids
