"""Reconciliation of the providers' dispute lines: a dispute that names no deposit of ours (the
API acknowledges its webhook and leaves it) is reported, not waited for."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from activities.reconciliation import ReconciliationActivities
from paysaga.reconciliation import ReconciliationBooks
from tests.paysaga.test_reconciliation_windows import (
    BANK,
    ReadingProvider,
    bank,  # noqa: F401  # the fixture: the bank's adapter, the stack's schedule paused
    mismatches_of,
    reconcile,
)
from tests.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def plant_dispute(stack: Stack, reference: str, amount: int, fee: int) -> None:
    """A card network disputes the bank's charge of `reference`, once the charge has settled."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
        while True:
            planted = await psp.post(
                f"/{BANK}/_sandbox/disputes",
                json={"reference": reference, "amount": amount, "fee": fee, "outcome": "lost"},
            )
            if planted.status_code != 422 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # the charge has not settled yet
    assert planted.status_code == 201, planted.text


async def test_reconcile_reports_a_dispute_that_names_no_deposit_of_ours(
    stack: Stack,
    db_pool: AsyncConnectionPool,
    bank: ReadingProvider,  # noqa: F811
) -> None:
    activities = ReconciliationActivities(
        ReconciliationBooks(db_pool),
        {BANK: bank},  # type: ignore[dict-item]
        timedelta(hours=1),
    )
    await reconcile(activities)  # what the bank settled before this test is matched already
    # Someone else's charge on the bank account: its reference is no payment of ours. The bank
    # then reports a dispute of it, whose webhook the API acknowledges and leaves.
    stranger = f"dep_stranger_{uuid.uuid4().hex[:12]}"
    await bank.provider.charge(
        idempotency_key=f"{stranger}:charge",
        reference=stranger,
        amount=5_000,
        currency="EUR",
        payment_method="pm_ok",
    )
    await plant_dispute(stack, stranger, 3_000, fee=500)

    run_key, _ = await reconcile(activities)

    # No saga will ever book it: reported at once (charge 5,000 in, 3,000 and 500 out).
    assert await mismatches_of(db_pool, stranger) == [(run_key, 1_500, 0)]
    async with db_pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM disputes WHERE payment_id = %s", (stranger,))
        assert await cur.fetchone() == (0,)
