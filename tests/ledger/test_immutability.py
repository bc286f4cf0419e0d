"""The database itself refuses to change or delete ledger entries and transactions."""

from __future__ import annotations

import psycopg
import pytest

from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.models import AccountKind, LineSpec

from .conftest import NewId

M = DEV_MERCHANT_ID  # the merchant whose books these tests write

STATEMENTS = [
    "UPDATE ledger_entries SET amount = amount + 1 WHERE transaction_id = %(tx)s",
    "UPDATE ledger_entries SET balance_after = 0 WHERE transaction_id = %(tx)s",
    "DELETE FROM ledger_entries WHERE transaction_id = %(tx)s",
    "UPDATE ledger_transactions SET description = 'forged' WHERE id = %(tx)s",
    "DELETE FROM ledger_transactions WHERE id = %(tx)s",
    "TRUNCATE ledger_entries",
    "TRUNCATE ledger_transactions CASCADE",
]


@pytest.mark.parametrize("statement", STATEMENTS)
async def test_change_of_entries_or_transactions_refused(
    ledger: Ledger, new_id: NewId, postgres_url: str, statement: str
) -> None:
    tx = await ledger.post_transaction(
        new_id("tx"),
        [
            LineSpec(M, new_id("psp"), AccountKind.provider_clearing, "EUR", -100),
            LineSpec(M, new_id("alice"), AccountKind.customer_wallet, "EUR", 100),
        ],
    )
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            await conn.execute(statement, {"tx": tx.id})
        await conn.rollback()
    assert await ledger.get_transaction(tx.id) == tx
