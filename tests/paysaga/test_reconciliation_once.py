"""A mismatch is recorded once, however many reconciliation runs see it again."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from psycopg_pool import AsyncConnectionPool

from paysaga.reconciliation import Mismatch, ReconciliationBooks
from paysaga.store import Store
from paysaga.store.pages import Window


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

    await Store(db_pool).create_customer(
        "mer_dev", f"cus_{reference}", reference, "A B", date(1990, 1, 1), "DE"
    )
    async with db_pool.connection() as conn:  # the mismatches are listed by their payment
        await conn.execute(
            "INSERT INTO payments (id, merchant_id, kind, status, customer_id, amount, currency)"
            " VALUES (%s, 'mer_dev', 'deposit', 'succeeded', %s, 1000, 'EUR')",
            (reference, f"cus_{reference}"),
        )
    rows, _ = await books.list_mismatches("mer_dev", "sandbox-cards", Window[int](100))
    other, _ = await books.list_mismatches("mer_dev_2", "sandbox-cards", Window[int](100))
    mine = [(r.provider_amount, r.ledger_amount) for r in rows if r.reference == reference]
    assert reference not in {r.reference for r in other}
    assert sorted(mine) == [(1_000, 0), (1_000, 400)]  # each distinct finding once
