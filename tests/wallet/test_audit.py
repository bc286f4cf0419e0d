"""The wallet's audit checks find what breaks its rules: violations planted, then rolled back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from paysaga.audit import SERVICE_AUDIT_CHECKS, audit_books
from tests.wallet.conftest import Books
from wallet.audit import (
    BONUS_BALANCES_BELONG_TO_ACTIVE_BONUSES,
    BONUS_POSTINGS_MATCH_BONUSES,
    NO_BET_WON_AND_ROLLED_BACK,
    ONE_ACTIVE_BONUS,
    WALLET_AUDIT_CHECKS,
    WALLET_POSTINGS_MATCH_AMOUNTS,
    WALLET_TRANSACTIONS_MATCH_ENTRIES,
)
from wallet.engine import WalletEngine
from wallet.models import Bet, GrantBonus, Rollback, Win

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def found(
    conn: psycopg.AsyncConnection[Any], sql: str, merchant_id: str
) -> list[tuple[Any, ...]]:
    """The violations a check finds in one merchant's books (its first column)."""
    rows = await (await conn.execute(sql)).fetchall()
    return [tuple(row) for row in rows if row[0] == merchant_id]


async def test_the_wallet_checks_run_in_the_service_audit(
    engine: WalletEngine, books: Books, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=500)
    await engine.submit(Bet(m, c, "p", "b1", "g", "r", 200, "EUR"))
    await engine.submit(Win(m, c, "p", "w1", "b1", 50))
    report = await audit_books(db_pool)
    wallet_checks = {check.name for check in WALLET_AUDIT_CHECKS}
    assert wallet_checks <= {check.name for check in report.checks}
    assert all(check in SERVICE_AUDIT_CHECKS for check in WALLET_AUDIT_CHECKS)
    assert all(c.passed for c in report.checks if c.name in wallet_checks), report.format()


async def test_the_checks_find_planted_violations(
    engine: WalletEngine, books: Books, postgres_url: str
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=1_000)
    await engine.submit(Bet(m, c, "p", "b1", "g", "r", 300, "EUR"))
    await engine.submit(Bet(m, c, "p", "b2", "g", "r", 100, "EUR"))
    await engine.submit(Rollback(m, c, "p", "rb2", "b2"))
    expires = datetime.now(UTC) + timedelta(days=1)
    granted_id = f"bon_audit_{m}"
    await engine.submit(GrantBonus(m, c, granted_id, 70, "GBP", 1, expires))
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        # Planted in a transaction that is rolled back: ledger rows cannot be deleted.
        # A bet recorded as taking more cash than its entries took.
        await conn.execute(
            "UPDATE wallet_transactions SET cash_part = 301 WHERE merchant_id = %s"
            " AND transaction_id = 'b1'",
            (m,),
        )
        # A win accepted on a bet whose rollback returned its money.
        await conn.execute(
            "INSERT INTO wallet_transactions (merchant_id, game_provider, transaction_id,"
            " customer_id, type, request_hash, outcome, answer, amount, bet_transaction_id)"
            " VALUES (%s, 'p', 'w2', %s, 'win', 'h', 'accepted', '{}', 0, 'b2')",
            (m, c),
        )
        # Two active bonuses, and bonus money with none active.
        for bonus_id in ("bon_x1", "bon_x2"):
            await conn.execute("DROP INDEX IF EXISTS uq_bonuses_one_active")
            await conn.execute(
                "INSERT INTO bonuses (id, merchant_id, customer_id, currency, status, amount,"
                " wagering_required, wagering_remaining, expires_at)"
                " VALUES (%s, %s, %s, 'USD', 'active', 10, 0, 0, now())",
                (f"{bonus_id}_{m}", m, c),
            )
        await conn.execute(
            "INSERT INTO ledger_accounts (merchant_id, owner_id, kind, currency, allow_negative,"
            " posted) VALUES (%s, %s, 'customer_bonus', 'EUR', false, 5)",
            (m, c),
        )
        # A win recorded as paying more than left the game; a bonus bigger than its grant.
        await conn.execute(
            "UPDATE wallet_transactions SET amount = 350 WHERE merchant_id = %s"
            " AND transaction_id = 'rb2'",
            (m,),
        )
        await conn.execute("UPDATE bonuses SET amount = 75 WHERE id = %s", (granted_id,))
        mismatched = await found(conn, WALLET_TRANSACTIONS_MATCH_ENTRIES.sql, m)
        sides = await found(conn, WALLET_POSTINGS_MATCH_AMOUNTS.sql, m)
        bonus_postings = await found(conn, BONUS_POSTINGS_MATCH_BONUSES.sql, m)
        both = await found(conn, NO_BET_WON_AND_ROLLED_BACK.sql, m)
        active = await found(conn, ONE_ACTIVE_BONUS.sql, m)
        orphan_bonus = await found(conn, BONUS_BALANCES_BELONG_TO_ACTIVE_BONUSES.sql, m)
        await conn.rollback()

    assert mismatched == [(m, "p", "b1", "bet", 301, 0, -300, 0)]
    assert both == [(m, "p", "b2")]
    assert active == [(m, c, "USD", 2)]
    assert orphan_bonus == [(m, c, "EUR", 5)]
    assert sides == [(m, "p", "rb2", "rollback", 350, -100, 0, 0)]
    assert bonus_postings == [
        (m, granted_id, "granted", "active", 70, -70),
        (m, f"bon_x1_{m}", "no grant posting", "active", None, None),
        (m, f"bon_x2_{m}", "no grant posting", "active", None, None),
    ]
