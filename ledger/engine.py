"""The ledger engine: double-entry postings, two-phase holds and idempotent writes on PostgreSQL.

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
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from psycopg import AsyncConnection
from psycopg.errors import DeadlockDetected, SerializationFailure, UniqueViolation
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ledger.errors import (
    AlreadyReversed,
    HoldExceeded,
    HoldExpired,
    HoldNotFound,
    HoldNotPending,
    HoldPostingMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidIdempotencyKey,
    LedgerError,
    TransactionNotFound,
    UnbalancedTransaction,
)
from ledger.models import (
    Account,
    AccountKind,
    AuditCheck,
    AuditQuery,
    AuditReport,
    Balance,
    CurrencyBalance,
    Entry,
    Hold,
    HoldStatus,
    LineSpec,
    Transaction,
    check_account,
    check_amount,
    check_currency,
)

T = TypeVar("T")
Conn: TypeAlias = AsyncConnection[Any]
Pool: TypeAlias = AsyncConnectionPool[Any]
AccountKey: TypeAlias = tuple[str, AccountKind, str]
Work: TypeAlias = Callable[[Conn], Awaitable[dict[str, Any]]]

MAX_ATTEMPTS = 8
"""Attempts of one write when PostgreSQL reports a serialization failure or a deadlock."""

_HOLD_COLUMNS = """
    h.id, h.idempotency_key, a.owner_id, a.kind, a.currency, h.amount, h.status, h.expires_at,
    h.posted_amount, h.posting_transaction_id
"""


class Ledger:
    """The ledger over a psycopg async pool; safe to share between tasks of one event loop."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._accounts: dict[AccountKey, Account] = {}

    # ------------------------------------------------------------------ accounts and reads

    async def account(self, owner_id: str, kind: AccountKind | str, currency: str) -> Account:
        """The account of (owner, kind, currency), created on first use."""
        key = _account_key(owner_id, kind, currency)
        cached = self._accounts.get(key)
        if cached is not None:
            return cached
        async with self._pool.connection() as conn:
            accounts = await self._ensure_accounts(conn, [key])
        return accounts[key]

    async def balance(self, owner_id: str, kind: AccountKind | str, currency: str) -> Balance:
        """An account's posted, held and available balances (zeros if it has never been used)."""
        owner_id, account_kind, currency = _account_key(owner_id, kind, currency)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT posted, held FROM ledger_accounts"
                " WHERE owner_id = %s AND kind = %s AND currency = %s",
                (owner_id, str(account_kind), currency),
            )
            row = await cur.fetchone()
        posted, held = (row[0], row[1]) if row else (0, 0)
        return Balance(posted=posted, held=held, available=posted - held)

    async def balances(
        self, owner_id: str, kind: AccountKind | str = AccountKind.customer_wallet
    ) -> list[CurrencyBalance]:
        """An owner's balances of one kind, one per currency, ordered by currency."""
        account_kind = check_account(owner_id, kind)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT currency, posted, held FROM ledger_accounts"
                " WHERE owner_id = %s AND kind = %s ORDER BY currency",
                (owner_id, str(account_kind)),
            )
            rows = await cur.fetchall()
        return [CurrencyBalance(currency=c, posted=p, held=h, available=p - h) for c, p, h in rows]

    async def get_transaction(self, transaction_id: int) -> Transaction:
        """A posted transaction with its entries; TransactionNotFound if there is none."""
        async with self._pool.connection() as conn:
            return await _load_transaction(conn, "t.id = %s", transaction_id)

    async def get_transaction_by_key(self, idempotency_key: str) -> Transaction:
        """The transaction posted under an idempotency key; TransactionNotFound if none."""
        async with self._pool.connection() as conn:
            return await _load_transaction(conn, "t.idempotency_key = %s", idempotency_key)

    async def get_hold(self, hold_id: int) -> Hold:
        """A hold as it is now; HoldNotFound if there is none."""
        hold = await self._find_hold("h.id = %s", hold_id)
        if hold is None:
            raise HoldNotFound(f"hold {hold_id} does not exist")
        return hold

    async def find_hold_by_key(self, idempotency_key: str) -> Hold | None:
        """The hold made under an idempotency key, as it is now; None if it was never made."""
        return await self._find_hold("h.idempotency_key = %s", idempotency_key)

    async def find_transaction_by_key(self, idempotency_key: str) -> Transaction | None:
        """The transaction posted under an idempotency key; None if it was never posted."""
        try:
            return await self.get_transaction_by_key(idempotency_key)
        except TransactionNotFound:
            return None

    async def _find_hold(self, where: str, value: object) -> Hold | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_HOLD_COLUMNS} FROM ledger_holds h"
                f" JOIN ledger_accounts a ON a.id = h.account_id WHERE {where}",
                (value,),
            )
            row = await cur.fetchone()
        return None if row is None else _hold_from_row(row)

    async def entries(
        self, owner_id: str, kind: AccountKind | str, currency: str
    ) -> list[tuple[int, Entry]]:
        """An account's entries in posting order, each with its transaction id."""
        owner_id, account_kind, currency = _account_key(owner_id, kind, currency)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT e.transaction_id, e.account_id, e.amount, e.balance_after"
                " FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id"
                " WHERE a.owner_id = %s AND a.kind = %s AND a.currency = %s ORDER BY e.id",
                (owner_id, str(account_kind), currency),
            )
            rows = await cur.fetchall()
        return [
            (tx_id, Entry(account_id, owner_id, account_kind, currency, amount, after))
            for tx_id, account_id, amount, after in rows
        ]

    # ------------------------------------------------------------------ writes

    async def post_transaction(
        self,
        idempotency_key: str,
        lines: Sequence[LineSpec],
        description: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Transaction:
        """Post balanced lines atomically; accounts are created on demand.

        Raises UnbalancedTransaction, InvalidAmount, InvalidCurrency, InsufficientFunds,
        IdempotencyConflict.
        """
        keys = _check_lines(lines)
        metadata = dict(metadata or {})
        content = {
            "lines": [
                [k[0], str(k[1]), k[2], line.amount] for k, line in zip(keys, lines, strict=True)
            ],
            "description": description,
            "metadata": metadata,
        }

        async def work(conn: Conn) -> dict[str, Any]:
            accounts = [self._accounts[k] for k in keys]
            legs = [(acc, line.amount) for acc, line in zip(accounts, lines, strict=True)]
            tx = await _post(conn, idempotency_key, legs, description, metadata)
            return tx.to_dict()

        result = await self._write(idempotency_key, "post_transaction", content, work, keys)
        return Transaction.from_dict(result)

    async def hold(
        self,
        idempotency_key: str,
        owner_id: str,
        kind: AccountKind | str,
        currency: str,
        amount: int,
        expires_at: datetime | None = None,
    ) -> Hold:
        """Reserve `amount` on an account (held += amount) until it is posted, voided or expires.

        A replay returns the hold as first created (pending), whatever happened to it since; ask
        `get_hold` for its current state. The expiry is not part of the idempotent content: a
        retried request computes its expiry anew, and the first one stands. Raises InsufficientFunds, InvalidAmount, InvalidCurrency,
        IdempotencyConflict.
        """
        key = _account_key(owner_id, kind, currency)
        check_amount(amount, positive=True)
        content = {"account": [key[0], str(key[1]), key[2]], "amount": amount}

        async def work(conn: Conn) -> dict[str, Any]:
            account = self._accounts[key]
            cur = await conn.execute(
                "SELECT posted, held FROM ledger_accounts WHERE id = %s FOR UPDATE", (account.id,)
            )
            row = await cur.fetchone()
            assert row is not None
            posted, held = row
            if not account.allow_negative and posted - held - amount < 0:
                raise InsufficientFunds(
                    f"{_describe(account)}: available {posted - held}, hold of {amount} refused"
                )
            cur = await conn.execute(
                "INSERT INTO ledger_holds (idempotency_key, account_id, amount, expires_at)"
                " VALUES (%s, %s, %s, %s) RETURNING id, expires_at",
                (idempotency_key, account.id, amount, expires_at),
            )
            hold_row = await cur.fetchone()
            assert hold_row is not None
            await conn.execute(
                "UPDATE ledger_accounts SET held = held + %s, version = version + 1 WHERE id = %s",
                (amount, account.id),
            )
            return Hold(
                id=hold_row[0],
                idempotency_key=idempotency_key,
                owner_id=account.owner_id,
                kind=account.kind,
                currency=account.currency,
                amount=amount,
                status=HoldStatus.pending,
                expires_at=_iso(hold_row[1]),
            ).to_dict()

        result = await self._write(idempotency_key, "hold", content, work, [key])
        return Hold.from_dict(result)

    async def post_hold(
        self,
        idempotency_key: str,
        hold_id: int,
        lines: Sequence[LineSpec],
        description: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Transaction:
        """Post a pending hold: the lines debit the held account by at most the hold.

        The whole hold is released and the posting applied in one transaction, so a partial post
        returns the remainder to the available balance. The hold ends `posted`. Raises
        HoldNotFound, HoldNotPending, HoldExpired, HoldExceeded, HoldPostingMismatch,
        UnbalancedTransaction, InsufficientFunds, IdempotencyConflict.
        """
        keys = _check_lines(lines)
        metadata = dict(metadata or {})
        content = {
            "hold_id": hold_id,
            "lines": [
                [k[0], str(k[1]), k[2], line.amount] for k, line in zip(keys, lines, strict=True)
            ],
            "description": description,
            "metadata": metadata,
        }

        async def work(conn: Conn) -> dict[str, Any]:
            cur = await conn.execute(
                "SELECT account_id, amount, status, expires_at IS NOT NULL AND expires_at <= now()"
                " FROM ledger_holds WHERE id = %s FOR UPDATE",
                (hold_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise HoldNotFound(f"hold {hold_id} does not exist")
            account_id, held_amount, status, expired = row
            if status != HoldStatus.pending:
                raise HoldNotPending(f"hold {hold_id} is already {status}")
            if expired:
                raise HoldExpired(f"hold {hold_id} has expired")
            accounts = [self._accounts[k] for k in keys]
            debit = -sum(
                line.amount
                for acc, line in zip(accounts, lines, strict=True)
                if acc.id == account_id
            )
            if debit <= 0:
                raise HoldPostingMismatch(f"the lines do not debit the account of hold {hold_id}")
            if debit > held_amount:
                raise HoldExceeded(f"hold {hold_id} is {held_amount}, posting {debit} refused")
            legs = [(acc, line.amount) for acc, line in zip(accounts, lines, strict=True)]
            tx = await _post(
                conn,
                idempotency_key,
                legs,
                description,
                metadata,
                release=(account_id, held_amount),
            )
            await conn.execute(
                "UPDATE ledger_holds SET status = 'posted', posted_amount = %s,"
                " posting_transaction_id = %s, resolved_at = now() WHERE id = %s",
                (debit, tx.id, hold_id),
            )
            return tx.to_dict()

        result = await self._write(idempotency_key, "post_hold", content, work, keys)
        return Transaction.from_dict(result)

    async def void_hold(self, idempotency_key: str, hold_id: int) -> Hold:
        """Release a pending hold without moving money; it ends `voided`.

        Raises HoldNotFound, HoldNotPending, IdempotencyConflict.
        """

        async def work(conn: Conn) -> dict[str, Any]:
            await _resolve_hold(conn, hold_id, HoldStatus.voided)
            return (await _load_hold(conn, hold_id)).to_dict()

        result = await self._write(idempotency_key, "void_hold", {"hold_id": hold_id}, work, [])
        return Hold.from_dict(result)

    async def reverse(
        self, idempotency_key: str, transaction_id: int, description: str = ""
    ) -> Transaction:
        """Post the negation of a transaction, which may be reversed only once.

        Raises TransactionNotFound, AlreadyReversed, InsufficientFunds, IdempotencyConflict.
        """

        async def work(conn: Conn) -> dict[str, Any]:
            original = await _load_transaction(
                conn, "t.id = %s", transaction_id, refuse_reversed=True
            )
            legs: list[tuple[Account, int]] = []
            for entry in original.entries:
                key = (entry.owner_id, entry.kind, entry.currency)
                account = self._accounts.get(key) or Account(
                    id=entry.account_id,
                    owner_id=entry.owner_id,
                    kind=entry.kind,
                    currency=entry.currency,
                    allow_negative=entry.kind.allow_negative,
                )
                legs.append((account, -entry.amount))
            tx = await _post(
                conn,
                idempotency_key,
                legs,
                description or f"reversal of transaction {transaction_id}",
                {},
                reverses=transaction_id,
            )
            return tx.to_dict()

        content = {"transaction_id": transaction_id, "description": description}
        result = await self._write(idempotency_key, "reverse", content, work, [])
        return Transaction.from_dict(result)

    async def expire_holds(self, now: datetime) -> int:
        """Expire every pending hold whose expiry is at or before `now`; return how many."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM ledger_holds WHERE status = 'pending' AND expires_at <= %s"
                " ORDER BY id",
                (now,),
            )
            hold_ids = [row[0] for row in await cur.fetchall()]
            await conn.commit()
        expired = 0
        for hold_id in hold_ids:

            async def work(conn: Conn, hold_id: int = hold_id) -> bool:
                try:
                    await _resolve_hold(conn, hold_id, HoldStatus.expired)
                except HoldNotPending:
                    return False  # posted or voided meanwhile
                return True

            if await self._in_transaction(work):
                expired += 1
        return expired

    # ------------------------------------------------------------------ audit

    async def audit(self, extra_checks: Sequence[AuditQuery] = ()) -> AuditReport:
        """Recompute every balance from the entries and holds and check the money rules.

        `extra_checks` run in the same snapshot, after the ledger's own.
        """
        checks: list[AuditCheck] = []
        queries = [*_AUDIT_QUERIES, *((q.name, q.sql, _found(q.found)) for q in extra_checks)]
        # One snapshot for every check, so that concurrent writes cannot fake a mismatch.
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            for name, sql, describe in queries:
                cur = await conn.execute(sql)
                rows = await cur.fetchall()
                detail = describe(len(rows), rows[:5])
                checks.append(AuditCheck(name=name, passed=not rows, detail=detail))
        return AuditReport(checks=checks)

    # ------------------------------------------------------------------ machinery

    async def _ensure_accounts(
        self, conn: Conn, keys: Sequence[AccountKey]
    ) -> dict[AccountKey, Account]:
        """The accounts of `keys`, created if missing (committed at once, outside any posting)."""
        # Sorted, so that two creators of the same accounts take the index locks in one order.
        missing = sorted({k for k in keys if k not in self._accounts})
        if missing:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    async with conn.transaction():
                        await conn.execute(
                            "INSERT INTO ledger_accounts (owner_id, kind, currency, allow_negative)"
                            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bool[])"
                            " ON CONFLICT (owner_id, kind, currency) DO NOTHING",
                            (
                                [k[0] for k in missing],
                                [str(k[1]) for k in missing],
                                [k[2] for k in missing],
                                [k[1].allow_negative for k in missing],
                            ),
                        )
                        cur = await conn.execute(
                            "SELECT a.id, a.owner_id, a.kind, a.currency, a.allow_negative"
                            " FROM ledger_accounts a"
                            " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(o, t, c)"
                            " ON a.owner_id = k.o AND a.kind = k.t AND a.currency = k.c",
                            (
                                [k[0] for k in missing],
                                [str(k[1]) for k in missing],
                                [k[2] for k in missing],
                            ),
                        )
                        rows = await cur.fetchall()
                    break
                except (SerializationFailure, DeadlockDetected):
                    if attempt == MAX_ATTEMPTS - 1:
                        raise
                    await _backoff(attempt)
            for account_id, owner_id, kind, currency, allow_negative in rows:
                account = Account(account_id, owner_id, AccountKind(kind), currency, allow_negative)
                self._accounts[(owner_id, account.kind, currency)] = account
        return {k: self._accounts[k] for k in keys}

    async def _write(
        self,
        idempotency_key: str,
        operation: str,
        content: dict[str, Any],
        work: Work,
        account_keys: Sequence[AccountKey],
    ) -> dict[str, Any]:
        """Run `work` once per idempotency key: a replay returns the first result."""
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise InvalidIdempotencyKey("an idempotency key must be a non-empty string")
        request_hash = _request_hash(operation, content)

        async def claim_and_work(conn: Conn) -> dict[str, Any]:
            first = await _claim(conn, idempotency_key, operation, request_hash)
            if first is not None:
                return first
            result = await work(conn)
            await conn.execute(
                "UPDATE ledger_idempotency SET result = %s WHERE key = %s",
                (Jsonb(result), idempotency_key),
            )
            return result

        return await self._in_transaction(claim_and_work, account_keys)

    async def _in_transaction(
        self, work: Callable[[Conn], Awaitable[T]], account_keys: Sequence[AccountKey] = ()
    ) -> T:
        """Run `work` in one database transaction, again on serialization failure or deadlock."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self._pool.connection() as conn:
                    if account_keys:
                        await self._ensure_accounts(conn, account_keys)
                    async with conn.transaction():
                        return await work(conn)
            except (SerializationFailure, DeadlockDetected):
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                await _backoff(attempt)
        raise AssertionError("unreachable")


# ---------------------------------------------------------------------- posting internals


async def _claim(conn: Conn, key: str, operation: str, request_hash: str) -> dict[str, Any] | None:
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


async def _post(
    conn: Conn,
    idempotency_key: str,
    legs: Sequence[tuple[Account, int]],
    description: str,
    metadata: dict[str, Any],
    *,
    reverses: int | None = None,
    release: tuple[int, int] | None = None,
) -> Transaction:
    """Append one balanced transaction and update the balances, under row locks in id order.

    `release` (account id, amount) lowers that account's held balance in the same transaction.
    """
    account_ids = sorted({acc.id for acc, _ in legs} | ({release[0]} if release else set()))
    cur = await conn.execute(
        "SELECT id, posted, held FROM ledger_accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (account_ids,),
    )
    posted: dict[int, int] = {}
    held: dict[int, int] = {}
    for account_id, account_posted, account_held in await cur.fetchall():
        posted[account_id] = account_posted
        held[account_id] = account_held
    if release:
        held[release[0]] -= release[1]
    balance_after: list[int] = []
    for account, amount in legs:
        posted[account.id] += amount
        balance_after.append(posted[account.id])
    for account, _ in legs:
        available = posted[account.id] - held[account.id]
        if not account.allow_negative and available < 0:
            raise InsufficientFunds(
                f"{_describe(account)}: available would be {available}, transaction refused"
            )
    try:
        # One statement appends the transaction and its entries and stores the new balances.
        cur = await conn.execute(
            _POST_SQL,
            (
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
            ),
        )
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
            Entry(acc.id, acc.owner_id, acc.kind, acc.currency, amount, after)
            for (acc, amount), after in zip(legs, balance_after, strict=True)
        ],
        reverses_transaction_id=reverses,
        created_at=created_at.isoformat(),
        description=description,
        metadata=metadata,
    )


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


async def _resolve_hold(conn: Conn, hold_id: int, status: HoldStatus) -> None:
    """End a pending hold without posting (voided or expired) and release its amount."""
    cur = await conn.execute(
        "SELECT account_id, amount, status FROM ledger_holds WHERE id = %s FOR UPDATE", (hold_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise HoldNotFound(f"hold {hold_id} does not exist")
    account_id, amount, current = row
    if current != HoldStatus.pending:
        raise HoldNotPending(f"hold {hold_id} is already {current}")
    await conn.execute("SELECT 1 FROM ledger_accounts WHERE id = %s FOR UPDATE", (account_id,))
    await conn.execute(
        "UPDATE ledger_accounts SET held = held - %s, version = version + 1 WHERE id = %s",
        (amount, account_id),
    )
    await conn.execute(
        "UPDATE ledger_holds SET status = %s, resolved_at = now() WHERE id = %s",
        (str(status), hold_id),
    )


async def _load_hold(conn: Conn, hold_id: int) -> Hold:
    cur = await conn.execute(
        f"SELECT {_HOLD_COLUMNS} FROM ledger_holds h"
        " JOIN ledger_accounts a ON a.id = h.account_id WHERE h.id = %s",
        (hold_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise HoldNotFound(f"hold {hold_id} does not exist")
    return _hold_from_row(row)


async def _load_transaction(
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
        "SELECT e.account_id, a.owner_id, a.kind, a.currency, e.amount, e.balance_after"
        " FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id"
        " WHERE e.transaction_id = %s ORDER BY e.id",
        (transaction_id,),
    )
    entries = [
        Entry(account_id, owner_id, AccountKind(kind), currency, amount, after)
        for account_id, owner_id, kind, currency, amount, after in await cur.fetchall()
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


def _hold_from_row(row: Sequence[Any]) -> Hold:
    hold_id, key, owner_id, kind, currency, amount, status, expires_at, posted, posting_tx = row
    return Hold(
        id=hold_id,
        idempotency_key=key,
        owner_id=owner_id,
        kind=AccountKind(kind),
        currency=currency,
        amount=amount,
        status=HoldStatus(status),
        expires_at=_iso(expires_at),
        posted_amount=posted,
        posting_transaction_id=posting_tx,
    )


def _account_key(owner_id: str, kind: AccountKind | str, currency: str) -> AccountKey:
    account_kind = check_account(owner_id, kind)
    return (owner_id, account_kind, check_currency(currency))


def _check_lines(lines: Sequence[LineSpec]) -> list[AccountKey]:
    """The account keys of valid, balanced lines; a LedgerError otherwise."""
    if len(lines) < 2:
        raise UnbalancedTransaction("a transaction needs at least two lines")
    keys: list[AccountKey] = []
    sums: dict[str, int] = {}
    for line in lines:
        key = _account_key(line.owner_id, line.kind, line.currency)
        check_amount(line.amount)
        keys.append(key)
        sums[key[2]] = sums.get(key[2], 0) + line.amount
    unbalanced = {currency: total for currency, total in sums.items() if total != 0}
    if unbalanced:
        raise UnbalancedTransaction(f"lines do not sum to zero per currency: {unbalanced}")
    return keys


def _request_hash(operation: str, content: dict[str, Any]) -> str:
    canonical = json.dumps([operation, content], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _describe(account: Account) -> str:
    return f"account {account.owner_id}/{account.kind}/{account.currency}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))


# ---------------------------------------------------------------------- audit queries


def _found(what: str) -> Callable[[int, list[Any]], str]:
    def describe(count: int, sample: list[Any]) -> str:
        if count == 0:
            return ""
        return f"{count} {what}, e.g. {', '.join(str(tuple(row)) for row in sample)}"

    return describe


_AUDIT_QUERIES: list[tuple[str, str, Callable[[int, list[Any]], str]]] = [
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

__all__ = ["Ledger", "LedgerError"]
