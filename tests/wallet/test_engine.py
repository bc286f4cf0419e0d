"""The wallet engine on the real PostgreSQL: answers, ledger entries, events, group commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ledger.models import AccountKind
from paysaga.store.sequencer import number_if_pending
from tests.wallet.conftest import Books, wallet_audit
from wallet.engine import WalletEngine
from wallet.models import (
    Bet,
    Call,
    Credit,
    Decision,
    EndBonus,
    ForfeitActiveBonus,
    GrantBonus,
    Rollback,
    Win,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

CASH, BONUS = AccountKind.customer_wallet, AccountKind.customer_bonus
GAME, FUNDING = AccountKind.game, AccountKind.bonus_funding
P = "prov"


def tx() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


def bet(m: str, c: str, amount: int, tx_id: str | None = None, **kw: Any) -> Bet:
    fields: dict[str, Any] = {"game_id": "g", "round_id": "r-" + tx(), "currency": "EUR", **kw}
    return Bet(m, c, P, tx_id or tx(), amount=amount, **fields)


async def entries_of(pool: AsyncConnectionPool[Any], ledger_key: str) -> list[tuple[str, int]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT a.kind, e.amount FROM ledger_entries e"
            " JOIN ledger_transactions t ON t.id = e.transaction_id"
            " JOIN ledger_accounts a ON a.id = e.account_id"
            " WHERE t.idempotency_key = %s ORDER BY e.id",
            (ledger_key,),
        )
        return [(kind, amount) for kind, amount in await cur.fetchall()]


async def events_of(pool: AsyncConnectionPool[Any], merchant_id: str) -> list[tuple[int, str]]:
    async with pool.connection() as conn:
        await number_if_pending(conn, merchant_id)  # as a feed read: every committed one numbered
        cur = await conn.execute(
            "SELECT sequence, type FROM events WHERE merchant_id = %s ORDER BY sequence",
            (merchant_id,),
        )
        return [(sequence, event_type) for sequence, event_type in await cur.fetchall()]


async def game_balance(pool: AsyncConnectionPool[Any], merchant_id: str) -> int:
    """The merchant's game account: the sum of its writers' shards."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT COALESCE(SUM(posted), 0) FROM ledger_accounts"
            " WHERE merchant_id = %s AND kind = 'game' AND currency = 'EUR'",
            (merchant_id,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_bet_and_win_post_real_ledger_transactions(
    engine: WalletEngine, books: Books, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=1_000)
    placed = await engine.submit(bet(m, c, 300, tx_id="b1"))
    assert placed.accepted and placed.answer["balance"] == {"cash": 700, "bonus": 0, "total": 700}
    won = await engine.submit(Win(m, c, P, "w1", "b1", 450, round_closed=True))
    assert won.answer["balance"]["cash"] == 1_150
    assert await entries_of(db_pool, f"wallet:{m}:{P}:b1") == [
        ("customer_wallet", -300),
        ("game", 300),
    ]
    assert await entries_of(db_pool, f"wallet:{m}:{P}:w1") == [
        ("game", -450),
        ("customer_wallet", 450),
    ]
    assert await books.balance(m, c, CASH) == 1_150
    assert await game_balance(db_pool, m) == -150
    assert await events_of(db_pool, m) == [(1, "wallet.transaction"), (2, "wallet.transaction")]


async def test_replays_post_once_and_other_content_is_refused(
    engine: WalletEngine, books: Books, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=1_000)
    other = await books.customer(m, cash=1_000)
    call = bet(m, c, 100, tx_id="b1")
    first = await engine.submit(call)
    again = await engine.submit(call)
    assert again.replayed and again.answer == first.answer
    assert (await engine.submit(bet(m, c, 101, tx_id="b1"))).outcome == "duplicate_transaction"
    under_other = bet(m, other, 100, tx_id="b1", round_id=call.round_id)
    assert (await engine.submit(under_other)).outcome == "duplicate_transaction"
    for call_twice in (Win(m, c, P, "w1", "b1", 40), Rollback(m, c, P, "r1", "b9")):
        answers = [await engine.submit(call_twice) for _ in range(2)]
        assert answers[1].replayed and answers[1].answer == answers[0].answer
    assert await books.balance(m, c, CASH) == 940
    assert len(await events_of(db_pool, m)) == 3  # one per accepted call, none for replays


async def test_concurrent_bets_beyond_the_balance_take_exactly_what_it_covers(
    engine: WalletEngine, books: Books
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=1_000)
    decisions = await asyncio.gather(*(engine.submit(bet(m, c, 100)) for _ in range(20)))
    outcomes = sorted(d.outcome for d in decisions)
    assert outcomes == ["accepted"] * 10 + ["insufficient_funds"] * 10
    assert all(d.answer["balance"]["cash"] >= 0 for d in decisions)
    assert await books.balance(m, c, CASH) == 0


async def test_a_batch_of_many_customers_commits_each_answer(
    engine: WalletEngine, books: Books
) -> None:
    m = await books.merchant()
    customers = [await books.customer(m, cash=500) for _ in range(30)]
    calls = [bet(m, c, 200) for c in customers for _ in range(3)]  # the third is refused
    decisions = await asyncio.gather(*(engine.submit(call) for call in calls))
    by_customer: dict[str, list[str]] = {}
    for call, decision in zip(calls, decisions, strict=True):
        by_customer.setdefault(call.customer_id, []).append(decision.outcome)
    assert all(o == ["accepted", "accepted", "insufficient_funds"] for o in by_customer.values())
    assert engine.stats.mean_batch > 1  # group commit: calls shared transactions


async def test_bonus_grant_wagering_completion_and_expiry(
    engine: WalletEngine, books: Books, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=30)
    expires = datetime.now(UTC) + timedelta(days=1)
    granted = await engine.submit(GrantBonus(m, c, "bon_a" + tx(), 100, "EUR", 1, expires))
    bonus_id = granted.answer["id"]
    assert granted.answer["remaining"] == 100 and granted.answer["wagering_remaining"] == 100
    placed = await engine.submit(bet(m, c, 50, tx_id="b1"))
    assert (placed.answer["cash_part"], placed.answer["bonus_part"]) == (30, 20)
    won = await engine.submit(Win(m, c, P, "w1", "b1", 100))  # split as the bet was funded
    assert (won.answer["cash_part"], won.answer["bonus_part"]) == (60, 40)
    await engine.submit(bet(m, c, 60, tx_id="b2"))
    done = await engine.submit(Win(m, c, P, "w2", "b2", 0))
    assert done.bonus is not None and done.bonus.status == "completed"
    assert done.answer["balance"] == {"cash": 120, "bonus": 0, "total": 120}
    assert await books.balance(m, c, BONUS) == 0
    assert await books.balance(m, "house", FUNDING) == -100
    # ended: an expiry now changes nothing
    late = await engine.submit(EndBonus(m, c, bonus_id, "expired"))
    assert late.answer["status"] == "completed"
    types = [t for _, t in await events_of(db_pool, m)]
    assert types.count("bonus.created") == 1 and types.count("bonus.completed") == 1

    second = await engine.submit(GrantBonus(m, c, "bon_b" + tx(), 70, "EUR", 10, expires))
    await engine.submit(bet(m, c, 150, tx_id="b3"))  # 120 cash, 30 bonus
    expired = await engine.submit(EndBonus(m, c, second.answer["id"], "expired"))
    assert expired.answer["status"] == "expired"
    assert await books.balance(m, c, BONUS) == 0
    assert await books.balance(m, "house", FUNDING) == -100 - 70 + 40
    rolled = await engine.submit(Rollback(m, c, P, "r3", "b3"))
    assert (rolled.answer["cash_part"], rolled.answer["bonus_part"]) == (120, 0)
    assert await books.balance(m, "house", FUNDING) == -100


async def test_a_closing_win_settles_the_rounds_open_bets_read_from_the_database(
    engine: WalletEngine, books: Books
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=0)
    expires = datetime.now(UTC) + timedelta(days=1)
    bonus = await engine.submit(GrantBonus(m, c, "bon_r" + tx(), 100, "EUR", 2, expires))
    for tx_id, amount in (("b1", 30), ("b2", 20)):
        await engine.submit(bet(m, c, amount, tx_id=tx_id, round_id="R"))
    closing = await engine.submit(Win(m, c, P, "w1", "b1", 10, round_closed=True))
    late = await engine.submit(Rollback(m, c, P, "r2", "b2"))
    ended = await engine.submit(EndBonus(m, c, bonus.answer["id"], "forfeited"))
    assert closing.answer["balance"] == {"cash": 0, "bonus": 60, "total": 60}
    assert late.outcome == "round_closed"
    assert ended.answer["wagering_remaining"] == 200 - 50  # both bets of the round counted


async def test_an_expired_bonus_is_expired_by_the_next_call_and_credits_pay_from_promotions(
    engine: WalletEngine, books: Books, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=0)
    past = datetime.now(UTC) - timedelta(seconds=1)  # granted expired; no timer runs here
    bonus = await engine.submit(GrantBonus(m, c, "bon_e" + tx(), 100, "EUR", 2, past))
    refused = await engine.submit(bet(m, c, 10))
    paid = await engine.submit(Credit(m, c, P, "fs1", "free_spin_win", 40, "EUR"))
    forfeit = await engine.submit(ForfeitActiveBonus(m, c, "EUR"))

    assert refused.outcome == "insufficient_funds"
    assert refused.answer["balance"] == {"cash": 0, "bonus": 0, "total": 0}
    assert await books.balance(m, "house", FUNDING) == 0
    assert "bonus.expired" in [t for _, t in await events_of(db_pool, m)]
    assert bonus.answer["id"] and paid.answer["balance"]["cash"] == 40
    assert await entries_of(db_pool, f"wallet:{m}:{P}:fs1") == [("promotions", -40), (CASH, 40)]
    assert forfeit.answer == {"bonus": None}


class AnswerLostOnce(WalletEngine):
    """An engine whose first batch commits, then loses its answer (the connection breaks)."""

    lost = False

    async def _run_batch(
        self, conn: AsyncConnection[Any], calls: Sequence[Call], first: list[Decision]
    ) -> list[Decision]:
        decisions = await super()._run_batch(conn, calls, first)
        if not self.lost:
            self.lost = True
            raise psycopg.OperationalError("the connection broke after COMMIT")
        return decisions


async def test_the_first_answer_of_a_call_whose_answer_was_lost_after_commit_is_no_replay(
    postgres_url: str, books: Books, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=500)
    async with AnswerLostOnce(postgres_url, writers=1) as lossy:
        call = bet(m, c, 200, tx_id="b1")
        first = await lossy.submit(call)
        again = await lossy.submit(call)

    assert lossy.stats.retries == 1
    assert first.accepted and not first.replayed
    assert again.replayed and again.answer == first.answer
    assert first.answer["balance"]["cash"] == 300
    assert len(await entries_of(db_pool, f"wallet:{m}:{P}:b1")) == 2  # booked once


async def test_the_audit_is_clean_after_wallet_traffic(
    engine: WalletEngine, books: Books, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=10_000)
    expires = datetime.now(UTC) + timedelta(days=1)
    await engine.submit(GrantBonus(m, c, "bon_" + tx(), 500, "EUR", 3, expires))
    calls: list[Any] = []
    for i in range(40):
        calls.append(bet(m, c, 100 + i, tx_id=f"b{i}", round_id=f"r{i % 7}"))
        if i % 3 == 0:
            calls.append(Win(m, c, P, f"w{i}", f"b{i}", 150, round_closed=i % 6 == 0))
        if i % 5 == 0:
            calls.append(Rollback(m, c, P, f"r{i}", f"b{i}"))
    await asyncio.gather(*(engine.submit(call) for call in calls))
    report = await wallet_audit(db_pool)
    assert report.ok, report.format()
