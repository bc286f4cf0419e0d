"""The service's audit check: each conversion's FX position legs are its quote's locked amounts."""

from __future__ import annotations

import uuid
from datetime import date

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.merchants import DEV_MERCHANT_ID
from ledger.audit import run_audit_cli
from paysaga.audit import FX_POSITIONS_MATCH_QUOTES, SERVICE_AUDIT_CHECKS, audit_books
from paysaga.store import Store, sealed_customer

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def plant_conversion(
    conn: psycopg.AsyncConnection, house: str, customer: str, legs: dict[str, int]
) -> tuple[str, int]:
    """A transfer's quote (EUR 100.00 less a 0.30 fee into USD 107.00) and its conversion's legs."""
    payment = f"tr_{uuid.uuid4().hex[:16]}"
    await conn.execute(
        "INSERT INTO fx_quotes (id, merchant_id, customer_id, source_currency, target_currency,"
        " source_amount, fee, target_amount, rate, mid_rate, expires_at, used_by_payment_id)"
        " VALUES (%s, %s, %s, 'EUR', 'USD', 10000, 30, 10700, '1.0732', '1.08', now(), %s)",
        (f"quo_{payment}", DEV_MERCHANT_ID, customer, payment),
    )
    cur = await conn.execute(
        "INSERT INTO ledger_transactions (idempotency_key) VALUES (%s) RETURNING id",
        (f"{payment}:convert",),
    )
    (transaction_id,) = await cur.fetchone()  # type: ignore[misc]
    for currency, amount in legs.items():
        cur = await conn.execute(
            "INSERT INTO ledger_accounts (merchant_id, owner_id, kind, currency, allow_negative)"
            " VALUES (%s, %s, 'fx_position', %s, true)"
            " ON CONFLICT (merchant_id, owner_id, kind, currency)"
            " DO UPDATE SET allow_negative = true RETURNING id",
            (DEV_MERCHANT_ID, house, currency),
        )
        (account_id,) = await cur.fetchone()  # type: ignore[misc]
        await conn.execute(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
            " VALUES (%s, %s, %s, 0)",
            (transaction_id, account_id, amount),
        )
    return payment, transaction_id


async def test_audit_finds_fx_position_legs_that_differ_from_the_quote(
    db_pool: AsyncConnectionPool, postgres_url: str
) -> None:
    house, customer = f"house-{uuid.uuid4().hex[:8]}", f"cus_{uuid.uuid4().hex[:16]}"
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        # Planted in a transaction that is rolled back: ledger rows cannot be deleted.
        name, birth = sealed_customer(
            Store(db_pool).personal_data,
            DEV_MERCHANT_ID,
            customer,
            "Ada Lovelace",
            date(1990, 12, 10),
        )
        await conn.execute(
            "INSERT INTO customers (id, merchant_id, external_id, full_name_sealed,"
            " birth_date_sealed, country) VALUES (%s, %s, %s, %s, %s, 'DE')",
            (customer, DEV_MERCHANT_ID, customer, name, birth),
        )
        exact = await plant_conversion(conn, house, customer, {"EUR": 9_970, "USD": -10_700})
        bad = [
            # one target minor unit more than the quote locked
            await plant_conversion(conn, house, customer, {"EUR": 9_970, "USD": -10_701}),
            # the fee left in the position instead of the fee account
            await plant_conversion(conn, house, customer, {"EUR": 10_000, "USD": -10_700}),
            # a leg in a third currency
            await plant_conversion(
                conn, house, customer, {"EUR": 9_970, "USD": -10_700, "GBP": -1}
            ),
        ]
        # FX position legs whose payment used no quote
        unquoted = f"tr_{uuid.uuid4().hex[:16]}"
        cur = await conn.execute(
            "INSERT INTO ledger_transactions (idempotency_key) VALUES (%s) RETURNING id",
            (f"{unquoted}:convert",),
        )
        (no_quote,) = await cur.fetchone()  # type: ignore[misc]
        await conn.execute(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
            " SELECT %s, id, 5, 0 FROM ledger_accounts WHERE owner_id = %s AND currency = 'EUR'",
            (no_quote, house),
        )
        rows = await (await conn.execute(FX_POSITIONS_MATCH_QUOTES.sql)).fetchall()
        await conn.rollback()

    mine = {exact[1], no_quote, *(transaction for _, transaction in bad)}
    found = [row for row in rows if row[0] in mine]
    assert found == sorted(
        [(transaction, payment, f"quo_{payment}") for payment, transaction in bad]
        + [(no_quote, unquoted, None)]
    )
    assert exact[1] not in {row[0] for row in found}


async def test_audit_command_includes_the_fx_quote_check(
    db_pool: AsyncConnectionPool, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await audit_books(db_pool)
    assert FX_POSITIONS_MATCH_QUOTES.name in {check.name for check in report.checks}
    await run_audit_cli(postgres_url, SERVICE_AUDIT_CHECKS)
    assert FX_POSITIONS_MATCH_QUOTES.name in capsys.readouterr().out
