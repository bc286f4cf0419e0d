"""Many ledger transactions in one database transaction: the ledger's primitive for group commit.

`post_batch` appends every transaction of a batch, all their entries and the new balances with
one SQL statement, so that its caller can pipeline it with its own writes and commit them
together (the game wallet's engine does). The protocol is `ledger.postings`' without the
per-write key claim: the caller

1. holds the row locks of every account the batch moves before it posts: `lock_accounts` takes
   them in ascending id order, the one lock order of every ledger write (no deadlocks);
2. has checked, under those locks, that no account that must not go negative does (the
   database's `ck_ledger_accounts_non_negative` refuses it anyway, failing the whole batch);
3. gives each transaction a unique idempotency key: `ledger_transactions.idempotency_key` is
   unique, so a transaction posted twice fails its batch instead of moving money twice.

Entries get their ids in the batch's order and `balance_after` is each account's posted balance
before the batch plus the running sum of the batch's entries on it: the audit's running-sum check
holds because the accounts stay locked from before the statement until the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from ledger.errors import CrossMerchantTransaction, UnbalancedTransaction
from ledger.models import Account, check_amount
from ledger.postings import Conn


@dataclass(frozen=True)
class BatchTransaction:
    """One balanced transaction of a batch: its key, and its legs on locked accounts."""

    idempotency_key: str
    legs: tuple[tuple[Account, int], ...]
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def check_transaction(transaction: BatchTransaction) -> None:
    """A LedgerError unless the legs are two or more nonzero amounts of one merchant, each
    currency summing to zero."""
    if len(transaction.legs) < 2:
        raise UnbalancedTransaction(f"{transaction.idempotency_key}: fewer than two legs")
    sums: dict[str, int] = {}
    for account, amount in transaction.legs:
        check_amount(amount)
        sums[account.currency] = sums.get(account.currency, 0) + amount
    if len({account.merchant_id for account, _ in transaction.legs}) > 1:
        raise CrossMerchantTransaction(f"{transaction.idempotency_key}: legs of two merchants")
    if any(total != 0 for total in sums.values()):
        raise UnbalancedTransaction(f"{transaction.idempotency_key}: unbalanced {sums}")


async def lock_accounts(conn: Conn, account_ids: Sequence[int]) -> None:
    """Lock the accounts in ascending id order until the transaction ends (pipeline-friendly:
    nothing is read back)."""
    await conn.execute(
        "SELECT 1 FROM ledger_accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (sorted(set(account_ids)),),
    )


async def post_batch(conn: Conn, transactions: Sequence[BatchTransaction]) -> None:
    """Append the transactions, their entries and the new balances, in one statement.

    The accounts must be locked by the caller's transaction (see the module's protocol). Nothing
    is read back, so that the statement pipelines with the caller's other writes. The rows travel
    as one JSON document each way (json.dumps is C; a Python array dumper per element is not).
    """
    for transaction in transactions:
        check_transaction(transaction)
    lines = [
        {"k": transaction.idempotency_key, "a": account.id, "m": amount}
        for transaction in transactions
        for account, amount in transaction.legs
    ]
    for n, line in enumerate(lines):
        line["n"] = n
    rows = [{"k": t.idempotency_key, "d": t.description, "m": t.metadata} for t in transactions]
    await conn.execute(_POST_BATCH_SQL, {"transactions": Jsonb(rows), "lines": Jsonb(lines)})


_POST_BATCH_SQL = """
WITH line AS (
    SELECT * FROM jsonb_to_recordset(%(lines)s) AS l(k text, a bigint, m bigint, n bigint)
), delta AS (
    SELECT a AS account_id, SUM(m) AS amount FROM line GROUP BY a
), account AS (
    UPDATE ledger_accounts AS a
    SET posted = a.posted + delta.amount, version = a.version + 1
    FROM delta WHERE a.id = delta.account_id
    RETURNING a.id, a.posted - delta.amount AS posted_before
), tx AS (
    INSERT INTO ledger_transactions (idempotency_key, description, metadata)
    SELECT k, d, m FROM jsonb_to_recordset(%(transactions)s) AS t(k text, d text, m jsonb)
    RETURNING id, idempotency_key
)
INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)
SELECT tx.id, line.a, line.m,
       account.posted_before + SUM(line.m) OVER (PARTITION BY line.a ORDER BY line.n)
FROM line
JOIN tx ON tx.idempotency_key = line.k
JOIN account ON account.id = line.a
ORDER BY line.n
"""
