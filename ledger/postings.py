"""The SQL of a ledger write: claim the key, lock accounts in order, append entries, move holds.

Every write runs in one database transaction that (1) claims its idempotency key in
`ledger_idempotency` (a concurrent duplicate waits on the key's unique index, then reads the
winner's result), (2) locks the accounts it touches with `SELECT ... FOR UPDATE` in ascending id
order (one lock order for everybody: no deadlocks between postings), (3) appends the transaction
and its entries and updates the stored balances, (4) stores its result under the key.
Holds are locked before accounts, never after.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg.errors import (
    DeadlockDetected,
    ForeignKeyViolation,
    SerializationFailure,
    UniqueViolation,
)
from psycopg.types.json import Jsonb

from domain.merchants import DEV_MERCHANT_ID
from ledger.errors import (
    AlreadyReversed,
    CrossMerchantTransaction,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAccountKind,
    ReceivableOverpaid,
    TransactionNotFound,
    UnbalancedTransaction,
)
from ledger.models import (
    Account,
    AccountKind,
    Entry,
    LineSpec,
    Split,
    Transaction,
    check_account,
    check_amount,
    check_currency,
)

Conn: TypeAlias = AsyncConnection[Any]
AccountKey: TypeAlias = tuple[str, str, AccountKind, str]  # merchant, owner, kind, currency
Leg: TypeAlias = tuple[Account, int]
SplitLeg: TypeAlias = tuple[Account, Account, int]  # first, rest, amount (see models.Split)

MAX_ATTEMPTS = 8
"""Attempts of one write when PostgreSQL reports a serialization failure or a deadlock."""

# ---------------------------------------------------------------------- requests


def account_key(
    merchant_id: str, owner_id: str, kind: AccountKind | str, currency: str
) -> AccountKey:
    """The checked (merchant, owner, kind, currency) of an account; a LedgerError if invalid."""
    account_kind = check_account(merchant_id, owner_id, kind)
    return (merchant_id, owner_id, account_kind, check_currency(currency))


def check_lines(lines: Sequence[LineSpec]) -> list[AccountKey]:
    """The account keys of valid, balanced lines of one merchant; a LedgerError otherwise."""
    if len(lines) < 2:
        raise UnbalancedTransaction("a transaction needs at least two lines")
    keys: list[AccountKey] = []
    sums: dict[str, int] = {}
    for line in lines:
        key = account_key(line.merchant_id, line.owner_id, line.kind, line.currency)
        check_amount(line.amount)
        keys.append(key)
        sums[key[3]] = sums.get(key[3], 0) + line.amount
    merchants = sorted({key[0] for key in keys})
    if len(merchants) > 1:
        raise CrossMerchantTransaction(f"lines name accounts of merchants {merchants}")
    unbalanced = {currency: total for currency, total in sums.items() if total != 0}
    if unbalanced:
        raise UnbalancedTransaction(f"lines do not sum to zero per currency: {unbalanced}")
    return keys


def check_split(
    lines: Sequence[LineSpec], split: Split
) -> tuple[list[AccountKey], AccountKey, AccountKey]:
    """The account keys of fixed lines and of a split's two accounts, all valid, balanced and
    of one merchant; a LedgerError otherwise."""
    if not lines:
        raise UnbalancedTransaction("a split needs at least one fixed line against it")
    check_amount(split.amount)
    first = account_key(split.merchant_id, split.first_owner_id, split.first_kind, split.currency)
    rest = account_key(split.merchant_id, split.rest_owner_id, split.rest_kind, split.currency)
    if first == rest:
        raise InvalidAccountKind("a split shares an amount between two different accounts")
    keys: list[AccountKey] = []
    sums: dict[str, int] = {split.currency: split.amount}
    for line in lines:
        key = account_key(line.merchant_id, line.owner_id, line.kind, line.currency)
        check_amount(line.amount)
        keys.append(key)
        sums[key[3]] = sums.get(key[3], 0) + line.amount
    merchants = sorted({key[0] for key in [*keys, first]})
    if len(merchants) > 1:
        raise CrossMerchantTransaction(f"lines name accounts of merchants {merchants}")
    unbalanced = {currency: total for currency, total in sums.items() if total != 0}
    if unbalanced:
        raise UnbalancedTransaction(f"lines do not sum to zero per currency: {unbalanced}")
    return keys, first, rest


def split_content(first: AccountKey, rest: AccountKey, amount: int) -> list[Any]:
    """A split as it enters a request's hash (its merchant enters by `merchant_content`)."""
    return [first[1], str(first[2]), rest[1], str(rest[2]), first[3], amount]


def lines_content(keys: Sequence[AccountKey], lines: Sequence[LineSpec]) -> list[list[Any]]:
    """The lines as they enter a request's hash; their one merchant enters by `merchant_content`."""
    return [[k[1], str(k[2]), k[3], line.amount] for k, line in zip(keys, lines, strict=True)]


def merchant_content(merchant_id: str) -> dict[str, str]:
    """The merchant as it enters a request's hash.

    Left out for the development merchant: every write made before merchants existed was its,
    and hashed without one; a saga retrying such a write after the upgrade must replay it.
    """
    return {} if merchant_id == DEV_MERCHANT_ID else {"merchant_id": merchant_id}


def request_hash(operation: str, content: dict[str, Any]) -> str:
    """The hash that tells a replay (same hash) from a reuse of the key (another hash)."""
    canonical = json.dumps([operation, content], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def backoff(attempt: int) -> None:
    """Sleep a random, growing while before another attempt."""
    await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))


# ---------------------------------------------------------------------- accounts and keys


async def create_accounts(conn: Conn, missing: Sequence[AccountKey]) -> list[Account]:
    """The accounts of `missing`, created if absent (committed at once, outside any posting)."""
    # Sorted by the caller, so that two creators take the index locks in one order.
    merchants, owners, kinds, currencies = (
        [k[0] for k in missing],
        [k[1] for k in missing],
        [str(k[2]) for k in missing],
        [k[3] for k in missing],
    )
    for attempt in range(MAX_ATTEMPTS):
        try:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO ledger_accounts"
                    " (merchant_id, owner_id, kind, currency, allow_negative)"
                    " SELECT * FROM unnest("
                    "%s::text[], %s::text[], %s::text[], %s::text[], %s::bool[])"
                    " ON CONFLICT (merchant_id, owner_id, kind, currency) DO NOTHING",
                    (merchants, owners, kinds, currencies, [k[2].allow_negative for k in missing]),
                )
                cur = await conn.execute(
                    "SELECT a.id, a.merchant_id, a.owner_id, a.kind, a.currency, a.allow_negative"
                    " FROM ledger_accounts a"
                    " JOIN unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS k(m, o, t, c)"
                    " ON a.merchant_id = k.m AND a.owner_id = k.o AND a.kind = k.t"
                    " AND a.currency = k.c",
                    (merchants, owners, kinds, currencies),
                )
                rows = await cur.fetchall()
            break
        except ForeignKeyViolation as exc:  # merchant_id references the merchants table
            raise InvalidAccountKind(f"no merchant among {sorted(set(merchants))}") from exc
        except (SerializationFailure, DeadlockDetected):
            if attempt == MAX_ATTEMPTS - 1:
                raise
            await backoff(attempt)
    return [
        Account(account_id, merchant_id, owner_id, AccountKind(kind), currency, allow_negative)
        for account_id, merchant_id, owner_id, kind, currency, allow_negative in rows
    ]


async def claim(conn: Conn, key: str, operation: str, request_hash: str) -> dict[str, Any] | None:
    """Claim the key (None) or return the first result stored under it.

    A concurrent holder of the same key makes the INSERT wait until it commits or rolls back.
    """
    cur = await conn.execute(
        "INSERT INTO ledger_idempotency (key, operation, request_hash) VALUES (%s, %s, %s)"
        " ON CONFLICT (key) DO NOTHING",
        (key, operation, request_hash),
    )
    if cur.rowcount == 1:
        return None
    cur = await conn.execute(
        "SELECT operation, request_hash, result FROM ledger_idempotency WHERE key = %s", (key,)
    )
    row = await cur.fetchone()
    if row is None:  # removed between the two statements (key expiry): treat as a race, retry
        raise SerializationFailure("idempotency key vanished")
    first_operation, first_hash, result = row
    if first_operation != operation or first_hash != request_hash:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for a different {first_operation} request"
        )
    assert isinstance(result, dict)
    return result


async def store_result(conn: Conn, key: str, result: dict[str, Any]) -> None:
    """Store a write's result under its claimed key, for its replays."""
    await conn.execute(
        "UPDATE ledger_idempotency SET result = %s WHERE key = %s", (Jsonb(result), key)
    )


# ---------------------------------------------------------------------- transactions


async def post(
    conn: Conn,
    idempotency_key: str,
    legs: Sequence[Leg],
    description: str,
    metadata: dict[str, Any],
    *,
    reverses: int | None = None,
    release: tuple[int, int] | None = None,
    split: SplitLeg | None = None,
) -> Transaction:
    """Append one balanced transaction and update the balances, under row locks in id order.

    `release` (account id, amount) lowers that account's held balance in the same transaction.
    `split` shares an amount between two accounts by their balances under the lock (legs of
    zero are left out).
    """
    split_ids = {split[0].id, split[1].id} if split else set()
    account_ids = sorted(
        {acc.id for acc, _ in legs} | ({release[0]} if release else set()) | split_ids
    )
    posted, held = await _lock_balances(conn, account_ids)
    if release:
        held[release[0]] -= release[1]
    if split:
        legs = [*legs, *_split_legs(split, posted, held)]
    balance_after: list[int] = []
    for account, amount in legs:
        posted[account.id] += amount
        balance_after.append(posted[account.id])
    for account, _ in legs:
        available = posted[account.id] - held[account.id]
        if not account.allow_negative and available < 0:
            raise InsufficientFunds(
                f"{describe_account(account)}: available would be {available}, transaction refused"
            )
        if account.kind.never_positive and posted[account.id] > 0:
            raise ReceivableOverpaid(
                f"{describe_account(account)}: balance would be {posted[account.id]}, transaction refused"
            )
    parameters = (
        idempotency_key,
        description,
        Jsonb(metadata),
        reverses,
        [acc.id for acc, _ in legs],
        [amount for _, amount in legs],
        balance_after,
        account_ids,
        [posted[i] for i in account_ids],
        [held[i] for i in account_ids],
    )
    try:
        # One statement appends the transaction and its entries and stores the new balances.
        cur = await conn.execute(_POST_SQL, parameters)
    except UniqueViolation as exc:
        if reverses is not None and "reverses_transaction_id" in str(exc):
            raise AlreadyReversed(f"transaction {reverses} was already reversed") from exc
        raise
    row = await cur.fetchone()
    assert row is not None
    transaction_id, created_at = row
    return Transaction(
        id=transaction_id,
        idempotency_key=idempotency_key,
        entries=[
            Entry(
                acc.id,
                acc.owner_id,
                acc.kind,
                acc.currency,
                amount,
                after,
                merchant_id=acc.merchant_id,
            )
            for (acc, amount), after in zip(legs, balance_after, strict=True)
        ],
        reverses_transaction_id=reverses,
        created_at=created_at.isoformat(),
        description=description,
        metadata=metadata,
    )


def _split_legs(split: SplitLeg, posted: dict[int, int], held: dict[int, int]) -> list[Leg]:
    """The split's legs: the first account moves towards zero as far as it can, the rest takes
    the remainder."""
    first, rest, amount = split
    available = posted[first.id] - held[first.id]
    # A debit takes at most what the first account has available; a credit at most what takes
    # it back up to zero.
    first_part = -min(-amount, max(available, 0)) if amount < 0 else min(amount, max(-available, 0))
    return [(acc, part) for acc, part in ((first, first_part), (rest, amount - first_part)) if part]


async def _lock_balances(
    conn: Conn, account_ids: Sequence[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """Lock the accounts in ascending id order; their posted and held balances by id."""
    cur = await conn.execute(
        "SELECT id, posted, held FROM ledger_accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (account_ids,),
    )
    posted: dict[int, int] = {}
    held: dict[int, int] = {}
    for account_id, account_posted, account_held in await cur.fetchall():
        posted[account_id] = account_posted
        held[account_id] = account_held
    return posted, held


_POST_SQL = """
WITH t AS (
    INSERT INTO ledger_transactions
        (idempotency_key, description, metadata, reverses_transaction_id)
    VALUES (%s, %s, %s, %s) RETURNING id, created_at
), e AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)
    SELECT t.id, l.a, l.m, l.b
    FROM t, unnest(%s::bigint[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS l(a, m, b, n)
    ORDER BY l.n
), u AS (
    UPDATE ledger_accounts AS a
    SET posted = v.posted, held = v.held, version = a.version + 1
    FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS v(id, posted, held)
    WHERE a.id = v.id
)
SELECT id, created_at FROM t
"""


def reversal_legs(original: Transaction, accounts: dict[AccountKey, Account]) -> list[Leg]:
    """The legs that negate `original`, on its accounts (from `accounts` when known)."""
    legs: list[Leg] = []
    for entry in original.entries:
        key = (entry.merchant_id, entry.owner_id, entry.kind, entry.currency)
        account = accounts.get(key) or Account(
            id=entry.account_id,
            merchant_id=entry.merchant_id,
            owner_id=entry.owner_id,
            kind=entry.kind,
            currency=entry.currency,
            allow_negative=entry.kind.allow_negative,
        )
        legs.append((account, -entry.amount))
    return legs


async def load_transaction(
    conn: Conn, where: str, value: Any, refuse_reversed: bool = False
) -> Transaction:
    """A transaction and its entries; with `refuse_reversed`, AlreadyReversed if it was."""
    cur = await conn.execute(
        "SELECT t.id, t.idempotency_key, t.reverses_transaction_id, t.created_at, t.description,"
        f" t.metadata, r.id FROM ledger_transactions t"
        f" LEFT JOIN ledger_transactions r ON r.reverses_transaction_id = t.id WHERE {where}",
        (value,),
    )
    row = await cur.fetchone()
    if row is None:
        raise TransactionNotFound(f"no ledger transaction for {value!r}")
    transaction_id, key, reverses, created_at, description, metadata, reversed_by = row
    if refuse_reversed and reversed_by is not None:
        raise AlreadyReversed(
            f"transaction {transaction_id} was already reversed by transaction {reversed_by}"
        )
    cur = await conn.execute(
        "SELECT e.account_id, a.merchant_id, a.owner_id, a.kind, a.currency, e.amount,"
        " e.balance_after"
        " FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id"
        " WHERE e.transaction_id = %s ORDER BY e.id",
        (transaction_id,),
    )
    entries = [
        Entry(
            account_id, owner_id, AccountKind(kind), currency, amount, after, merchant_id=merchant
        )
        for account_id, merchant, owner_id, kind, currency, amount, after in await cur.fetchall()
    ]
    return Transaction(
        id=transaction_id,
        idempotency_key=key,
        entries=entries,
        reverses_transaction_id=reverses,
        created_at=created_at.isoformat(),
        description=description,
        metadata=dict(metadata or {}),
    )


def describe_account(account: Account) -> str:
    return f"account {account.merchant_id}/{account.owner_id}/{account.kind}/{account.currency}"
