"""Many concurrent writers on a few hot accounts: money is conserved and no race surfaces."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import psycopg
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.errors import AlreadyReversed, HoldNotPending, InsufficientFunds
from ledger.models import AccountKind, HoldStatus, LineSpec, Transaction

from .conftest import NewId

M = DEV_MERCHANT_ID  # the merchant whose books these tests write

W, C, F = AccountKind.customer_wallet, AccountKind.provider_clearing, AccountKind.fees
WRITERS = 48
STEPS = 12
EXPECTED_REFUSALS = (InsufficientFunds, AlreadyReversed, HoldNotPending)


@pytest_asyncio.fixture
async def busy_ledger(postgres_url: str) -> AsyncIterator[Ledger]:
    """A ledger on its own pool of 16 connections (writers outnumber connections 3 to 1)."""
    pool: AsyncConnectionPool = AsyncConnectionPool(
        postgres_url, min_size=16, max_size=16, open=False
    )
    await pool.open(wait=True)
    yield Ledger(pool)
    await pool.close()


async def writer(
    ledger: Ledger,
    rng: random.Random,
    wallets: list[str],
    psp: str,
    house: str,
    new_id: NewId,
    stats: dict[str, int],
) -> None:
    """A client doing random transfers, holds posted or voided, and reversals."""
    mine: list[Transaction] = []
    for _ in range(STEPS):
        src, dst = rng.sample(wallets, 2)
        amount = rng.randint(1, 2_000)
        action = rng.random()
        try:
            if action < 0.45:
                tx = await ledger.post_transaction(
                    new_id("tr"),
                    [LineSpec(M, src, W, "EUR", -amount), LineSpec(M, dst, W, "EUR", amount)],
                )
                mine.append(tx)
            elif action < 0.85:
                hold = await ledger.hold(new_id("hold"), M, src, W, "EUR", amount)
                if rng.random() < 0.7:
                    part = rng.randint(1, amount)
                    fee = min(part - 1, 10)
                    lines = [
                        LineSpec(M, src, W, "EUR", -part),
                        LineSpec(M, psp, C, "EUR", part - fee),
                    ]
                    if fee:
                        lines.append(LineSpec(M, house, F, "EUR", fee))
                    await ledger.post_hold(new_id("post"), hold.id, lines)
                else:
                    await ledger.void_hold(new_id("void"), hold.id)
            elif mine:
                await ledger.reverse(new_id("rev"), mine.pop(rng.randrange(len(mine))).id)
            stats["ok"] += 1
        except EXPECTED_REFUSALS as exc:
            stats[type(exc).__name__] += 1


async def test_concurrent_writers_conserve_money(
    busy_ledger: Ledger, new_id: NewId, postgres_url: str
) -> None:
    ledger = busy_ledger
    wallets = [new_id(f"hot{i}") for i in range(4)]
    psp, house = new_id("psp"), new_id("house")
    for i, wallet in enumerate(wallets):
        await ledger.post_transaction(
            new_id(f"seed{i}"),
            [LineSpec(M, psp, C, "EUR", -100_000), LineSpec(M, wallet, W, "EUR", 100_000)],
        )
    stats = {"ok": 0, "InsufficientFunds": 0, "AlreadyReversed": 0, "HoldNotPending": 0}
    rngs = [random.Random(seed) for seed in range(WRITERS)]
    await asyncio.wait_for(
        asyncio.gather(*(writer(ledger, r, wallets, psp, house, new_id, stats) for r in rngs)),
        timeout=120,
    )
    assert stats["ok"] > WRITERS * STEPS // 3, stats

    accounts = [(w, W) for w in wallets] + [(psp, C), (house, F)]
    balances = [await ledger.balance(M, owner, kind, "EUR") for owner, kind in accounts]
    assert sum(b.posted for b in balances) == 0
    assert all(b.held == 0 and b.available >= 0 for b in balances[:4])
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        for (owner, kind), balance in zip(accounts, balances, strict=True):
            cur = await conn.execute(
                "SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e"
                " JOIN ledger_accounts a ON a.id = e.account_id"
                " WHERE a.owner_id = %s AND a.kind = %s AND a.currency = 'EUR'",
                (owner, str(kind)),
            )
            assert (await cur.fetchone()) == (balance.posted,)
    report = await ledger.audit()
    assert report.ok, report.format()


async def test_concurrent_duplicates_write_once(
    busy_ledger: Ledger, new_id: NewId, postgres_url: str
) -> None:
    ledger = busy_ledger
    alice, bob, psp = new_id("alice"), new_id("bob"), new_id("psp")
    key = new_id("dup")
    lines = [LineSpec(M, psp, C, "EUR", -500), LineSpec(M, alice, W, "EUR", 500)]
    results = await asyncio.gather(*(ledger.post_transaction(key, lines) for _ in range(32)))
    assert len({r.id for r in results}) == 1
    assert len({repr(r) for r in results}) == 1
    assert (await ledger.balance(M, alice, W, "EUR")).posted == 500
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute(
            "SELECT COUNT(*) FROM ledger_entries WHERE transaction_id = %s", (results[0].id,)
        )
        assert await cur.fetchone() == (2,)

    hold_key = new_id("hold")
    holds = await asyncio.gather(
        *(ledger.hold(hold_key, M, alice, W, "EUR", 300) for _ in range(32))
    )
    assert len({h.id for h in holds}) == 1
    assert (await ledger.balance(M, alice, W, "EUR")).held == 300

    # Different keys racing for one hold: exactly one posts, the others see it is no longer pending.
    post_lines = [LineSpec(M, alice, W, "EUR", -300), LineSpec(M, bob, W, "EUR", 300)]
    outcomes = await asyncio.gather(
        *(ledger.post_hold(new_id("post"), holds[0].id, post_lines) for _ in range(16)),
        *(ledger.void_hold(new_id("void"), holds[0].id) for _ in range(16)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, HoldNotPending) for o in outcomes if isinstance(o, BaseException))
    final = await ledger.get_hold(holds[0].id)
    assert final.status in (HoldStatus.posted, HoldStatus.voided)

    # Different keys racing to reverse one transaction: exactly one reversal.
    reversals = await asyncio.gather(
        *(ledger.reverse(new_id("rev"), results[0].id) for _ in range(16)), return_exceptions=True
    )
    done = [r for r in reversals if isinstance(r, Transaction)]
    refused = [r for r in reversals if isinstance(r, BaseException)]
    if final.status is HoldStatus.voided:
        assert len(done) == 1 and all(isinstance(r, AlreadyReversed) for r in refused)
    else:  # alice spent the 300 deposited: the reversal would take her wallet below zero
        assert not done and all(isinstance(r, InsufficientFunds) for r in refused)
    report = await ledger.audit()
    assert report.ok, report.format()
