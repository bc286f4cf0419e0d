"""The ledger audit: the checks it runs in one snapshot, and `paysaga ledger audit`'s printer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from psycopg_pool import AsyncConnectionPool

from ledger.models import AuditCheck, AuditQuery, AuditReport

Describe: TypeAlias = Callable[[int, list[Any]], str]
"""What a check found, from the number of rows its query returned and a sample of them."""


async def run_checks(
    pool: AsyncConnectionPool[Any], extra_checks: Sequence[AuditQuery] = ()
) -> AuditReport:
    """Run the ledger's checks, then `extra_checks`, in one read-only snapshot."""
    checks: list[AuditCheck] = []
    queries = [*LEDGER_CHECKS, *((q.name, q.sql, _found(q.found)) for q in extra_checks)]
    # One snapshot for every check, so that concurrent writes cannot fake a mismatch.
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for name, sql, describe in queries:
            cur = await conn.execute(sql)
            rows = await cur.fetchall()
            detail = describe(len(rows), rows[:5])
            checks.append(AuditCheck(name=name, passed=not rows, detail=detail))
    return AuditReport(checks=checks)


async def run_audit_cli(
    database_url: str,
    extra_checks: Sequence[AuditQuery] = (),
    connection_kwargs: dict[str, Any] | None = None,
) -> int:
    """Print each audit check and a summary line; 0 if the ledger is clean, else 1.

    `extra_checks` are its users' checks (the service's: `paysaga.audit`), in the same snapshot;
    `connection_kwargs` psycopg's (`prepare_threshold=None` behind PgBouncer).
    """
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=1, max_size=2, kwargs=connection_kwargs or {}, open=False
    )
    await pool.open(wait=True)
    try:
        report = await run_checks(pool, extra_checks)
    finally:
        await pool.close()
    print(report.format())
    return 0 if report.ok else 1


def _found(what: str) -> Describe:
    """What a check found, from the number of rows and a sample; "" when nothing."""

    def describe(count: int, sample: list[Any]) -> str:
        if count == 0:
            return ""
        return f"{count} {what}, e.g. {', '.join(str(tuple(row)) for row in sample)}"

    return describe


LEDGER_CHECKS: list[tuple[str, str, Describe]] = [
    (
        "posted balances equal the sum of entries",
        """
        SELECT a.id, a.posted, COALESCE(s.total, 0) FROM ledger_accounts a
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_entries
                   GROUP BY account_id) s ON s.account_id = a.id
        WHERE a.posted <> COALESCE(s.total, 0)
        """,
        _found("accounts (id, stored, recomputed)"),
    ),
    (
        "held balances equal the pending holds",
        """
        SELECT a.id, a.held, COALESCE(s.total, 0) FROM ledger_accounts a
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_holds
                   WHERE status = 'pending' GROUP BY account_id) s ON s.account_id = a.id
        WHERE a.held <> COALESCE(s.total, 0)
        """,
        _found("accounts (id, stored, recomputed)"),
    ),
    (
        "transactions sum to zero per currency",
        """
        SELECT e.transaction_id, a.currency, SUM(e.amount) FROM ledger_entries e
        JOIN ledger_accounts a ON a.id = e.account_id
        GROUP BY e.transaction_id, a.currency HAVING SUM(e.amount) <> 0
        """,
        _found("transactions (id, currency, sum)"),
    ),
    (
        "transactions within one merchant",
        # Each merchant's books are its own: no transaction moves accounts of two merchants, and
        # a hold is posted by a transaction of its own account's merchant.
        """
        SELECT 'transaction', e.transaction_id,
               string_agg(DISTINCT a.merchant_id, ' ' ORDER BY a.merchant_id)
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        GROUP BY e.transaction_id HAVING COUNT(DISTINCT a.merchant_id) > 1
        UNION ALL
        SELECT 'hold', h.id,
               held.merchant_id || ' posted by '
               || string_agg(DISTINCT a.merchant_id, ' ' ORDER BY a.merchant_id)
        FROM ledger_holds h
        JOIN ledger_accounts held ON held.id = h.account_id
        JOIN ledger_entries e ON e.transaction_id = h.posting_transaction_id
        JOIN ledger_accounts a ON a.id = e.account_id
        WHERE a.merchant_id <> held.merchant_id
        GROUP BY h.id, held.merchant_id
        ORDER BY 1 DESC, 2
        """,
        _found("transactions or holds spanning merchants (which, id, merchants)"),
    ),
    (
        "transactions have at least two entries",
        """
        SELECT t.id, COUNT(e.id) FROM ledger_transactions t
        LEFT JOIN ledger_entries e ON e.transaction_id = t.id
        GROUP BY t.id HAVING COUNT(e.id) < 2
        """,
        _found("transactions (id, entries)"),
    ),
    (
        "entry balances follow the running sum",
        """
        SELECT id, account_id, balance_after, running FROM (
            SELECT id, account_id, balance_after,
                   SUM(amount) OVER (PARTITION BY account_id ORDER BY id) AS running
            FROM ledger_entries) r
        WHERE balance_after <> running
        """,
        _found("entries (id, account, balance_after, running sum)"),
    ),
    (
        "wallets never below zero",
        """
        SELECT id, owner_id, currency, posted - held FROM ledger_accounts
        WHERE NOT allow_negative AND posted - held < 0
        """,
        _found("accounts (id, owner, currency, available)"),
    ),
    (
        "receivables never above zero",
        # A customer's receivable is a debt owed to the merchant: zero or below, never a credit.
        "SELECT id, owner_id, currency, posted FROM ledger_accounts"
        " WHERE kind = 'customer_receivable' AND posted > 0",
        _found("accounts (id, owner, currency, balance)"),
    ),
    (
        "held balances are not negative",
        "SELECT id, held FROM ledger_accounts WHERE held < 0",
        _found("accounts (id, held)"),
    ),
    (
        "holds post at most their amount",
        """
        SELECT id, amount, posted_amount FROM ledger_holds
        WHERE amount <= 0 OR posted_amount < 0 OR posted_amount > amount
           OR (status <> 'posted' AND posted_amount <> 0)
        """,
        _found("holds (id, amount, posted)"),
    ),
    (
        "posted holds have exactly their posting transaction",
        """
        SELECT id, status, posting_transaction_id FROM ledger_holds
        WHERE (status = 'posted') <> (posting_transaction_id IS NOT NULL)
        """,
        _found("holds (id, status, posting transaction)"),
    ),
    (
        "holds are resolved at most once",
        """
        SELECT posting_transaction_id, COUNT(*) FROM ledger_holds
        WHERE posting_transaction_id IS NOT NULL
        GROUP BY posting_transaction_id HAVING COUNT(*) > 1
        """,
        _found("transactions posting several holds (id, holds)"),
    ),
    (
        "transactions reversed at most once",
        """
        SELECT reverses_transaction_id, COUNT(*) FROM ledger_transactions
        WHERE reverses_transaction_id IS NOT NULL
        GROUP BY reverses_transaction_id HAVING COUNT(*) > 1
        """,
        _found("transactions (id, reversals)"),
    ),
    (
        "reversals mirror their originals",
        # Both ways: a reversal that misses a leg, and one that adds a leg, are both wrong.
        """
        WITH original AS (
            SELECT r.id AS reversal, e.account_id, -SUM(e.amount) AS amount
            FROM ledger_transactions r JOIN ledger_entries e
              ON e.transaction_id = r.reverses_transaction_id
            GROUP BY r.id, e.account_id
        ), reversal AS (
            SELECT r.id AS reversal, e.account_id, SUM(e.amount) AS amount
            FROM ledger_transactions r JOIN ledger_entries e ON e.transaction_id = r.id
            WHERE r.reverses_transaction_id IS NOT NULL
            GROUP BY r.id, e.account_id
        ), difference AS (
            (SELECT * FROM original EXCEPT SELECT * FROM reversal)
            UNION ALL
            (SELECT * FROM reversal EXCEPT SELECT * FROM original)
        )
        SELECT DISTINCT d.reversal, r.reverses_transaction_id
        FROM difference d JOIN ledger_transactions r ON r.id = d.reversal
        """,
        _found("reversals (id, original)"),
    ),
    (
        "FX position legs come in conversions",
        # An FX position account moves only in a conversion: money in, in one currency, and out,
        # in another, in the same transaction (or the reversal of one, signs swapped).
        """
        SELECT e.transaction_id, string_agg(a.currency || ':' || e.amount, ' ' ORDER BY e.id)
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE a.kind = 'fx_position'
        GROUP BY e.transaction_id
        HAVING COUNT(DISTINCT a.currency) <> 2
            OR COUNT(DISTINCT a.currency) FILTER (WHERE e.amount > 0) <> 1
            OR COUNT(DISTINCT a.currency) FILTER (WHERE e.amount < 0) <> 1
            OR bool_or(e.amount = 0)
        """,
        _found("transactions (id, fx position legs)"),
    ),
    (
        "idempotent writes have a result",
        "SELECT key, operation FROM ledger_idempotency WHERE result IS NULL",
        _found("keys (key, operation)"),
    ),
]
