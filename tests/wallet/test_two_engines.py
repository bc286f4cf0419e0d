"""Two API processes, each with its own wallet engine, on one database: a customer's calls stay
serialized (PostgreSQL's row locks, not the engine's queues, order them across processes).

`make dev API_WORKERS=2` and the bench's `--api-workers` run one engine per API process; this is
what makes that safe. Asserted on what a caller and the books show: the answers, the balance the
ledger holds, one ledger transaction per accepted call, the audit.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from ledger.models import AccountKind
from tests.wallet.conftest import Books, wallet_audit
from wallet.engine import WalletEngine
from wallet.models import Bet, Rollback

pytestmark = pytest.mark.asyncio(loop_scope="session")

CASH = AccountKind.customer_wallet
P = "prov"


def bet(m: str, c: str, amount: int) -> Bet:
    tx_id = f"t-{uuid.uuid4().hex[:16]}"
    return Bet(m, c, P, tx_id, game_id="g", round_id=tx_id, amount=amount, currency="EUR")


async def ledger_transactions(pool: AsyncConnectionPool[Any], m: str, tx_id: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM ledger_transactions WHERE idempotency_key = %s",
            (f"wallet:{m}:{P}:{tx_id}",),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_bets_of_one_customer_raced_through_two_engines_never_overdraw(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=1_000)
    bets = [bet(m, c, 50) for _ in range(40)]  # twice what the wallet holds
    async with (
        WalletEngine(postgres_url, writers=2) as one,
        WalletEngine(postgres_url, writers=3) as two,
    ):
        decisions = await asyncio.gather(
            *((one if n % 2 else two).submit(call) for n, call in enumerate(bets))
        )
    accepted = [d for d in decisions if d.outcome == "accepted"]
    assert len(accepted) == 20
    assert {d.outcome for d in decisions} == {"accepted", "insufficient_funds"}
    assert all(d.answer["balance"]["cash"] >= 0 for d in decisions)
    # One after the other, whichever engine took them: each accepted bet saw the balance the
    # previous one left, so their balances after are 950, 900, ... 0, each once.
    assert sorted(d.answer["balance"]["cash"] for d in accepted) == list(range(0, 1_000, 50))
    assert await books.balance(m, c, CASH) == 0
    for call, decision in zip(bets, decisions, strict=True):
        posted = 1 if decision.outcome == "accepted" else 0
        assert await ledger_transactions(db_pool, m, call.transaction_id) == posted
    report = await wallet_audit(db_pool)
    assert report.ok, report.format()


async def test_a_bet_and_its_rollback_sent_to_two_engines_leave_the_ledger_consistent(
    books: Books, postgres_url: str
) -> None:
    """The rollback may reach the books before or after its bet; either order ends with the
    money back and the bet refused or cancelled, never booked twice."""
    m = await books.merchant()
    c = await books.customer(m, cash=1_000)
    bets = [bet(m, c, 100) for _ in range(8)]
    rollbacks = [Rollback(m, c, P, f"rb-{b.transaction_id}", b.transaction_id) for b in bets]
    async with (
        WalletEngine(postgres_url, writers=2) as one,
        WalletEngine(postgres_url, writers=2) as two,
    ):
        decisions = await asyncio.gather(
            *(one.submit(b) for b in bets), *(two.submit(r) for r in rollbacks)
        )
    assert all(d.outcome in ("accepted", "bet_rolled_back") for d in decisions)
    assert await books.balance(m, c, CASH) == 1_000
