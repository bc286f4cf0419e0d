"""The audit recomputes every balance and reports planted violations; the CLI exits accordingly."""

from __future__ import annotations

import psycopg
import pytest

from domain.merchants import DEV_MERCHANT_ID
from ledger.audit import run_audit_cli
from ledger.engine import Ledger
from ledger.models import AccountKind, LineSpec

from .conftest import NewId

M = DEV_MERCHANT_ID  # the merchant whose books these tests write


async def seed(ledger: Ledger, new_id: NewId) -> str:
    """A small clean history: a deposit, a transfer, a partially posted hold, a reversal."""
    alice, bob, psp = new_id("alice"), new_id("bob"), new_id("psp")
    W, C = AccountKind.customer_wallet, AccountKind.provider_clearing
    await ledger.post_transaction(
        new_id("dep"), [LineSpec(M, psp, C, "EUR", -1_000), LineSpec(M, alice, W, "EUR", 1_000)]
    )
    tx = await ledger.post_transaction(
        new_id("tr"), [LineSpec(M, alice, W, "EUR", -200), LineSpec(M, bob, W, "EUR", 200)]
    )
    await ledger.reverse(new_id("rev"), tx.id)
    hold = await ledger.hold(new_id("hold"), M, alice, W, "EUR", 500)
    await ledger.post_hold(
        new_id("post"),
        hold.id,
        [LineSpec(M, alice, W, "EUR", -300), LineSpec(M, psp, C, "EUR", 300)],
    )
    await ledger.hold(new_id("hold"), M, alice, W, "EUR", 100)
    return alice


async def test_audit_clean_ledger(ledger: Ledger, new_id: NewId) -> None:
    await seed(ledger, new_id)
    report = await ledger.audit()
    assert report.ok, report.format()
    assert len(report.checks) >= 10
    assert "all passed" in report.format()


async def test_audit_cli_returns_zero_when_clean(
    ledger: Ledger, new_id: NewId, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(ledger, new_id)
    assert await run_audit_cli(postgres_url) == 0
    out = capsys.readouterr().out
    assert "posted balances equal the sum of entries" in out
    assert "FAIL" not in out


@pytest.mark.parametrize(
    ("corruption", "restore", "failed_check"),
    [
        (
            "UPDATE ledger_accounts SET posted = posted + 7 WHERE id = %(id)s",
            "UPDATE ledger_accounts SET posted = posted - 7 WHERE id = %(id)s",
            "posted balances equal the sum of entries",
        ),
        (
            "UPDATE ledger_accounts SET held = held + 5 WHERE id = %(id)s",
            "UPDATE ledger_accounts SET held = held - 5 WHERE id = %(id)s",
            "held balances equal the pending holds",
        ),
    ],
)
async def test_audit_reports_corrupted_balance(
    ledger: Ledger,
    new_id: NewId,
    postgres_url: str,
    capsys: pytest.CaptureFixture[str],
    corruption: str,
    restore: str,
    failed_check: str,
) -> None:
    alice = await seed(ledger, new_id)
    account = await ledger.account(M, alice, AccountKind.customer_wallet, "EUR")
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(corruption, {"id": account.id})
        try:
            report = await ledger.audit()
            assert not report.ok
            assert [c.name for c in report.failures] == [failed_check]
            assert str(account.id) in report.failures[0].detail
            assert await run_audit_cli(postgres_url) == 1
            out = capsys.readouterr().out
            assert "FAIL" in out and failed_check in out
        finally:
            await conn.execute(restore, {"id": account.id})
    assert (await ledger.audit()).ok


async def failing_checks(conn: psycopg.AsyncConnection) -> dict[str, list[tuple[object, ...]]]:
    """Every audit check run inside `conn`'s own (uncommitted) view of the ledger."""
    from ledger.audit import LEDGER_CHECKS as _AUDIT_QUERIES

    failing = {}
    for name, sql, _describe in _AUDIT_QUERIES:
        rows = await (await conn.execute(sql)).fetchall()
        if rows:
            failing[name] = rows
    return failing


async def test_audit_catches_a_reversal_with_an_extra_leg(
    ledger: Ledger, new_id: NewId, postgres_url: str
) -> None:
    alice, bob, carol = new_id("alice"), new_id("bob"), new_id("carol")
    W, C = AccountKind.customer_wallet, AccountKind.provider_clearing
    await ledger.post_transaction(
        new_id("dep"), [LineSpec(M, carol, C, "EUR", -1_000), LineSpec(M, alice, W, "EUR", 1_000)]
    )
    tx = await ledger.post_transaction(
        new_id("tr"), [LineSpec(M, alice, W, "EUR", -200), LineSpec(M, bob, W, "EUR", 200)]
    )
    legs = {e.account_id: e.amount for e in tx.entries}
    extra = (await ledger.account(M, carol, C, "EUR")).id
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        # Planted in a transaction that is rolled back: ledger rows cannot be deleted.
        cur = await conn.execute(
            "INSERT INTO ledger_transactions (idempotency_key, reverses_transaction_id)"
            " VALUES (%s, %s) RETURNING id",
            (new_id("bad-reversal"), tx.id),
        )
        (reversal_id,) = await cur.fetchone()  # type: ignore[misc]
        mirrored = [(account, -amount) for account, amount in legs.items()]
        # The mirror of the original, plus a leg in and out of an account it never touched.
        for account, amount in [*mirrored, (extra, 50), (extra, -50)]:
            await conn.execute(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
                " VALUES (%s, %s, %s, 0)",
                (reversal_id, account, amount),
            )
        failing = await failing_checks(conn)
        await conn.rollback()

    assert failing["reversals mirror their originals"] == [(reversal_id, tx.id)]


async def test_audit_catches_an_fx_position_leg_outside_a_conversion(
    ledger: Ledger, new_id: NewId, postgres_url: str
) -> None:
    house, alice, psp = new_id("house"), new_id("alice"), new_id("psp")
    P, W = AccountKind.fx_position, AccountKind.customer_wallet
    await ledger.post_transaction(
        new_id("dep"),
        [
            LineSpec(M, psp, AccountKind.provider_clearing, "EUR", -1_000),
            LineSpec(M, alice, W, "EUR", 1_000),
        ],
    )
    await ledger.post_transaction(
        new_id("convert"),
        [
            LineSpec(M, alice, W, "EUR", -1_000),
            LineSpec(M, house, P, "EUR", 1_000),
            LineSpec(M, house, P, "USD", -1_080),
            LineSpec(M, alice, W, "USD", 1_080),
        ],
    )
    assert (await ledger.audit()).ok, "a conversion is what FX positions are for"
    position = (await ledger.account(M, house, P, "EUR")).id
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute(
            "INSERT INTO ledger_transactions (idempotency_key) VALUES (%s) RETURNING id",
            (new_id("stray"),),
        )
        (stray_id,) = await cur.fetchone()  # type: ignore[misc]
        await conn.execute(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
            " VALUES (%s, %s, 500, 0)",
            (stray_id, position),
        )

        failing = await failing_checks(conn)
        await conn.rollback()

    assert [row[0] for row in failing["FX position legs come in conversions"]] == [stray_id]
