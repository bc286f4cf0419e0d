"""A mismatch is recorded once, however many reconciliation runs see it again."""

from __future__ import annotations

import uuid

import pytest
from psycopg_pool import AsyncConnectionPool

from paysaga.reconciliation import Mismatch, ReconciliationBooks


@pytest.mark.asyncio(loop_scope="session")
async def test_the_same_mismatch_seen_by_every_run_is_listed_once(
    db_pool: AsyncConnectionPool,
) -> None:
    books = ReconciliationBooks(db_pool)
    reference = f"dep_{uuid.uuid4().hex}"
    seen = Mismatch("sandbox-cards", reference, "EUR", 1_000, 0)
    changed = Mismatch("sandbox-cards", reference, "EUR", 1_000, 400)

    for run in range(3):
        await books.record_run(f"run-{uuid.uuid4()}-{run}", "sandbox-cards", 1, [seen])
    await books.record_run(f"run-{uuid.uuid4()}", "sandbox-cards", 1, [changed])

    rows, _ = await books.list_mismatches("sandbox-cards", 100, None)
    mine = [(r.provider_amount, r.ledger_amount) for r in rows if r.reference == reference]
    assert sorted(mine) == [(1_000, 0), (1_000, 400)]  # each distinct finding once
