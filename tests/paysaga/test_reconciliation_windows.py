"""Reconciliation by settlement window, on the real stack: each run reads only its new window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.reconciliation import ReconcileInput, ReconcileResult, ReconciliationActivities
from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.models import AccountKind, LineSpec
from paysaga.reconciliation import ReconciliationBooks
from providers.base import SettlementLine
from providers.sandbox import SandboxProvider
from tests.stack import Stack, create_customer, post_payment, wait_terminal, worker_schedule

pytestmark = pytest.mark.asyncio(loop_scope="session")

BANK = "sandbox-bank"


class ReadingProvider:
    """The real sandbox adapter, remembering each window it was asked for and what it answered."""

    def __init__(self, provider: SandboxProvider) -> None:
        self.provider = provider
        self.reads: list[tuple[datetime | None, datetime | None, list[SettlementLine]]] = []

    async def settlement_report(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[SettlementLine]:
        lines = await self.provider.settlement_report(since=since, until=until)
        self.reads.append((since, until, lines))
        return lines


@pytest_asyncio.fixture(loop_scope="session")
async def bank(stack: Stack, temporal_env: WorkflowEnvironment) -> AsyncIterator[ReadingProvider]:
    """The bank's adapter; the stack's own schedule paused so that only the test moves windows."""
    schedule = await worker_schedule(
        temporal_env.client, f"paysaga-reconciliation-{stack.task_queue}"
    )
    await schedule.pause()
    try:
        async with httpx.AsyncClient() as http:
            yield ReadingProvider(SandboxProvider(BANK, stack.psp.url, http, 2.0))
    finally:
        await schedule.unpause()


async def reconcile(activities: ReconciliationActivities) -> tuple[str, ReconcileResult]:
    run_key = f"test-{uuid.uuid4()}:{BANK}"
    result = await ActivityEnvironment().run(
        activities.reconcile_provider, ReconcileInput(BANK, run_key)
    )
    return run_key, result


async def plant_line(stack: Stack, reference: str, amount: int) -> None:
    async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
        planted = await psp.post(
            f"/{BANK}/_sandbox/settlement-adjustments",
            json={"kind": "charge", "reference": reference, "amount": amount, "currency": "EUR"},
        )
    assert planted.status_code == 201, planted.text


async def mismatches_of(db_pool: AsyncConnectionPool, reference: str) -> list[tuple[object, ...]]:
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT r.run_key, m.provider_amount, m.ledger_amount FROM reconciliation_mismatches m"
            " JOIN reconciliation_runs r ON r.id = m.run_id WHERE m.reference = %s",
            (reference,),
        )
        return list(await cur.fetchall())


async def test_reconcile_consecutive_windows_reads_each_line_once(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool, bank: ReadingProvider
) -> None:
    books = ReconciliationBooks(db_pool)
    activities = ReconciliationActivities(books, {BANK: bank}, timedelta(hours=1))  # type: ignore[dict-item]
    first_key, first = await reconcile(activities)

    # A real deposit at the bank: settled by the PSP, then booked by the saga a moment later.
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 2_500,
        "currency": "EUR",
        "payment_method": "pm_ok",
        "provider": BANK,
    }
    deposit = (await post_payment(api, "/v1/deposits", body)).json()
    assert (await wait_terminal(api, deposit["id"]))["status"] == "succeeded"
    phantom = f"dep_phantom_{uuid.uuid4().hex[:12]}"
    await plant_line(stack, phantom, 4_242)

    second_key, second = await reconcile(activities)
    third_key, third = await reconcile(activities)

    # Each window starts where the last one ended, as stored.
    assert second.window_start == first.window_end
    assert third.window_start == second.window_end
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT run_key, window_start, window_end FROM reconciliation_runs"
            " WHERE run_key = ANY(%s) ORDER BY window_end",
            ([first_key, second_key, third_key],),
        )
        stored = await cur.fetchall()
    assert [row[0] for row in stored] == [first_key, second_key, third_key]
    assert stored[1][1] == stored[0][2] and stored[2][1] == stored[1][2]
    # What was read: the second window holds the new lines, the third none of them.
    (_, _, first_lines), (since, until, second_lines), (_, _, third_lines) = bank.reads
    assert (since, until) == (stored[1][1], stored[1][2])
    assert {deposit["id"], phantom} <= {line.reference for line in second_lines}
    assert {deposit["id"], phantom}.isdisjoint(line.reference for line in first_lines)
    assert {deposit["id"], phantom}.isdisjoint(line.reference for line in third_lines)
    assert third.lines_checked == len(third_lines) < second.lines_checked
    # The planted line is a mismatch, recorded once; the deposit matched its ledger entries.
    assert await mismatches_of(db_pool, phantom) == [(second_key, 4_242, 0)]
    assert await mismatches_of(db_pool, deposit["id"]) == []


async def test_reconcile_booked_payment_without_settlement_is_a_mismatch_once_overdue(
    stack: Stack, db_pool: AsyncConnectionPool, bank: ReadingProvider
) -> None:
    grace = timedelta(seconds=2)
    activities = ReconciliationActivities(ReconciliationBooks(db_pool), {BANK: bank}, grace)  # type: ignore[dict-item]
    ledger = Ledger(db_pool)
    never, late = (f"dep_{name}_{uuid.uuid4().hex[:12]}" for name in ("never", "late"))
    for reference in (never, late):  # booked as a deposit's credit, settled (or not) later
        await ledger.post_transaction(
            f"{reference}:credit",
            [
                LineSpec(DEV_MERCHANT_ID, BANK, AccountKind.provider_clearing, "EUR", -1_500),
                LineSpec(
                    DEV_MERCHANT_ID, f"cus_{reference}", AccountKind.customer_wallet, "EUR", 1_500
                ),
            ],
        )

    await reconcile(activities)  # within the grace: neither is a mismatch yet
    assert await mismatches_of(db_pool, never) == []
    await plant_line(stack, late, 1_500)  # settled in a later window, within the grace
    await reconcile(activities)
    await asyncio.sleep(grace.total_seconds() + 0.5)
    overdue_key, _ = await reconcile(activities)
    await reconcile(activities)

    assert await mismatches_of(db_pool, never) == [(overdue_key, 0, 1_500)]  # once
    assert await mismatches_of(db_pool, late) == []
