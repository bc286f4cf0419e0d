"""The ledger's public API: accounts, balances, transactions and holds, read and written.

`Ledger` checks each request, then runs its write through `ledger.postings` (the SQL, and the
protocol every write follows) once per idempotency key; `Ledger.audit` runs `ledger.audit`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from psycopg.errors import DeadlockDetected, SerializationFailure
from psycopg_pool import AsyncConnectionPool

from ledger import holds, postings
from ledger.audit import run_checks
from ledger.errors import (
    HoldNotFound,
    HoldNotPending,
    InvalidIdempotencyKey,
    LedgerError,
    TransactionNotFound,
)
from ledger.models import (
    Account,
    AccountKind,
    AuditQuery,
    AuditReport,
    Balance,
    CurrencyBalance,
    Entry,
    Hold,
    HoldStatus,
    LineSpec,
    Split,
    Transaction,
    check_account,
    check_amount,
)
from ledger.postings import MAX_ATTEMPTS, AccountKey, Conn, account_key

T = TypeVar("T")
Pool: TypeAlias = AsyncConnectionPool[Any]
Work: TypeAlias = Callable[[Conn], Awaitable[dict[str, Any]]]
# The caller's own writes, made first in a posting's database transaction: if they raise, nothing
# is posted; if the posting is refused, they are rolled back with it.
Alongside: TypeAlias = Callable[[Conn], Awaitable[None]]


class Ledger:
    """The ledger over a psycopg async pool; safe to share between tasks of one event loop."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._accounts: dict[AccountKey, Account] = {}

    # ------------------------------------------------------------------ accounts and reads

    async def account(
        self, merchant_id: str, owner_id: str, kind: AccountKind | str, currency: str
    ) -> Account:
        """The account of (merchant, owner, kind, currency), created on first use."""
        key = account_key(merchant_id, owner_id, kind, currency)
        cached = self._accounts.get(key)
        if cached is not None:
            return cached
        async with self._pool.connection() as conn:
            accounts = await self._ensure_accounts(conn, [key])
        return accounts[key]

    async def balance(
        self, merchant_id: str, owner_id: str, kind: AccountKind | str, currency: str
    ) -> Balance:
        """An account's posted, held and available balances (zeros if it has never been used)."""
        merchant_id, owner_id, account_kind, currency = account_key(
            merchant_id, owner_id, kind, currency
        )
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT posted, held FROM ledger_accounts"
                " WHERE merchant_id = %s AND owner_id = %s AND kind = %s AND currency = %s",
                (merchant_id, owner_id, str(account_kind), currency),
            )
            row = await cur.fetchone()
        posted, held = (row[0], row[1]) if row else (0, 0)
        return Balance(posted=posted, held=held, available=posted - held)

    async def balances(
        self,
        merchant_id: str,
        owner_id: str,
        kind: AccountKind | str = AccountKind.customer_wallet,
    ) -> list[CurrencyBalance]:
        """An owner's balances of one kind in one merchant's books, one per currency, by currency."""
        account_kind = check_account(merchant_id, owner_id, kind)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT currency, posted, held FROM ledger_accounts"
                " WHERE merchant_id = %s AND owner_id = %s AND kind = %s ORDER BY currency",
                (merchant_id, owner_id, str(account_kind)),
            )
            rows = await cur.fetchall()
        return [CurrencyBalance(currency=c, posted=p, held=h, available=p - h) for c, p, h in rows]

    async def get_transaction(self, transaction_id: int) -> Transaction:
        """A posted transaction with its entries; TransactionNotFound if there is none."""
        async with self._pool.connection() as conn:
            return await postings.load_transaction(conn, "t.id = %s", transaction_id)

    async def get_transaction_by_key(self, idempotency_key: str) -> Transaction:
        """The transaction posted under an idempotency key; TransactionNotFound if none."""
        async with self._pool.connection() as conn:
            return await postings.load_transaction(conn, "t.idempotency_key = %s", idempotency_key)

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
            return await holds.find_hold(conn, where, value)

    async def entries(
        self, merchant_id: str, owner_id: str, kind: AccountKind | str, currency: str
    ) -> list[tuple[int, Entry]]:
        """An account's entries in posting order, each with its transaction id."""
        merchant_id, owner_id, account_kind, currency = account_key(
            merchant_id, owner_id, kind, currency
        )
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT e.transaction_id, e.account_id, e.amount, e.balance_after"
                " FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id"
                " WHERE a.merchant_id = %s AND a.owner_id = %s AND a.kind = %s"
                " AND a.currency = %s ORDER BY e.id",
                (merchant_id, owner_id, str(account_kind), currency),
            )
            rows = await cur.fetchall()
        return [
            (
                tx_id,
                Entry(
                    account_id,
                    owner_id,
                    account_kind,
                    currency,
                    amount,
                    after,
                    merchant_id=merchant_id,
                ),
            )
            for tx_id, account_id, amount, after in rows
        ]

    # ------------------------------------------------------------------ writes

    async def post_transaction(
        self,
        idempotency_key: str,
        lines: Sequence[LineSpec],
        description: str = "",
        metadata: dict[str, Any] | None = None,
        alongside: Alongside | None = None,
    ) -> Transaction:
        """Post balanced lines of one merchant atomically; accounts are created on demand.

        `alongside`: the caller's writes, in the same database transaction, made first.
        Raises UnbalancedTransaction, CrossMerchantTransaction, InvalidAmount, InvalidCurrency,
        InsufficientFunds, IdempotencyConflict.
        """
        keys = postings.check_lines(lines)
        metadata = dict(metadata or {})
        content = {
            "lines": postings.lines_content(keys, lines),
            **postings.merchant_content(keys[0][0]),
            "description": description,
            "metadata": metadata,
        }

        async def work(conn: Conn) -> dict[str, Any]:
            legs = self._legs(keys, lines)
            tx = await postings.post(conn, idempotency_key, legs, description, metadata)
            return tx.to_dict()

        result = await self._write(
            idempotency_key, "post_transaction", content, work, keys, alongside
        )
        return Transaction.from_dict(result)

    async def post_split(
        self,
        idempotency_key: str,
        lines: Sequence[LineSpec],
        split: Split,
        description: str = "",
        metadata: dict[str, Any] | None = None,
        alongside: Alongside | None = None,
    ) -> Transaction:
        """Post fixed lines and a `Split` of one amount between two accounts, atomically.

        The split is decided under the accounts' locks (see `Split`), so it never overdraws
        the first account whatever posts meanwhile; a replay returns the first result, however
        the balances moved since. Raises what `post_transaction` raises, and ReceivableOverpaid.
        """
        keys, first, rest = postings.check_split(lines, split)
        metadata = dict(metadata or {})
        content = {
            "lines": postings.lines_content(keys, lines),
            "split": postings.split_content(first, rest, split.amount),
            **postings.merchant_content(keys[0][0]),
            "description": description,
            "metadata": metadata,
        }

        async def work(conn: Conn) -> dict[str, Any]:
            shared = (self._accounts[first], self._accounts[rest], split.amount)
            legs = self._legs(keys, lines)
            tx = await postings.post(
                conn, idempotency_key, legs, description, metadata, split=shared
            )
            return tx.to_dict()

        result = await self._write(
            idempotency_key, "post_split", content, work, [*keys, first, rest], alongside
        )
        return Transaction.from_dict(result)

    async def hold(
        self,
        idempotency_key: str,
        merchant_id: str,
        owner_id: str,
        kind: AccountKind | str,
        currency: str,
        amount: int,
        expires_at: datetime | None = None,
    ) -> Hold:
        """Reserve `amount` on an account (held += amount) until it is posted, voided or expires.

        A replay returns the hold as first created (pending), whatever happened to it since; ask
        `get_hold` for its current state. The expiry is not part of the idempotent content: a
        retried request computes its expiry anew, and the first one stands. Raises
        InsufficientFunds, InvalidAmount, InvalidCurrency, IdempotencyConflict.
        """
        key = account_key(merchant_id, owner_id, kind, currency)
        check_amount(amount, positive=True)
        content = {
            "account": [key[1], str(key[2]), key[3]],
            "amount": amount,
            **postings.merchant_content(merchant_id),
        }

        async def work(conn: Conn) -> dict[str, Any]:
            account = self._accounts[key]
            hold = await holds.insert_hold(conn, idempotency_key, account, amount, expires_at)
            return hold.to_dict()

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
        returns the remainder to the available balance. The hold ends `posted`. The lines are
        of the held account's merchant. Raises HoldNotFound, HoldNotPending, HoldExpired,
        HoldExceeded, HoldPostingMismatch, CrossMerchantTransaction, UnbalancedTransaction,
        InsufficientFunds, IdempotencyConflict.
        """
        keys = postings.check_lines(lines)
        metadata = dict(metadata or {})
        content = {
            "hold_id": hold_id,
            "lines": postings.lines_content(keys, lines),
            **postings.merchant_content(keys[0][0]),
            "description": description,
            "metadata": metadata,
        }

        async def work(conn: Conn) -> dict[str, Any]:
            legs = self._legs(keys, lines)
            tx = await holds.post_pending_hold(
                conn, idempotency_key, hold_id, legs, description, metadata
            )
            return tx.to_dict()

        result = await self._write(idempotency_key, "post_hold", content, work, keys)
        return Transaction.from_dict(result)

    async def void_hold(self, idempotency_key: str, hold_id: int) -> Hold:
        """Release a pending hold without moving money; it ends `voided`.

        Raises HoldNotFound, HoldNotPending, IdempotencyConflict.
        """

        async def work(conn: Conn) -> dict[str, Any]:
            await holds.resolve_hold(conn, hold_id, HoldStatus.voided)
            return (await holds.load_hold(conn, hold_id)).to_dict()

        result = await self._write(idempotency_key, "void_hold", {"hold_id": hold_id}, work, [])
        return Hold.from_dict(result)

    async def reverse(
        self, idempotency_key: str, transaction_id: int, description: str = ""
    ) -> Transaction:
        """Post the negation of a transaction, which may be reversed only once.

        Raises TransactionNotFound, AlreadyReversed, InsufficientFunds, IdempotencyConflict.
        """

        async def work(conn: Conn) -> dict[str, Any]:
            original = await postings.load_transaction(
                conn, "t.id = %s", transaction_id, refuse_reversed=True
            )
            tx = await postings.post(
                conn,
                idempotency_key,
                postings.reversal_legs(original, self._accounts),
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
                    await holds.resolve_hold(conn, hold_id, HoldStatus.expired)
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
        return await run_checks(self._pool, extra_checks)

    # ------------------------------------------------------------------ machinery

    def _legs(self, keys: Sequence[AccountKey], lines: Sequence[LineSpec]) -> list[postings.Leg]:
        """The lines on their (ensured) accounts."""
        return [(self._accounts[k], line.amount) for k, line in zip(keys, lines, strict=True)]

    async def _ensure_accounts(
        self, conn: Conn, keys: Sequence[AccountKey]
    ) -> dict[AccountKey, Account]:
        """The accounts of `keys`, created if missing (committed at once, outside any posting)."""
        # Sorted, so that two creators of the same accounts take the index locks in one order.
        missing = sorted({k for k in keys if k not in self._accounts})
        if missing:
            for account in await postings.create_accounts(conn, missing):
                key = (account.merchant_id, account.owner_id, account.kind, account.currency)
                self._accounts[key] = account
        return {k: self._accounts[k] for k in keys}

    async def _write(
        self,
        idempotency_key: str,
        operation: str,
        content: dict[str, Any],
        work: Work,
        account_keys: Sequence[AccountKey],
        alongside: Alongside | None = None,
    ) -> dict[str, Any]:
        """Run `work` once per idempotency key: a replay returns the first result. `alongside`
        runs first in the same transaction, on a replay too."""
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise InvalidIdempotencyKey("an idempotency key must be a non-empty string")
        request_hash = postings.request_hash(operation, content)

        async def claim_and_work(conn: Conn) -> dict[str, Any]:
            if alongside is not None:
                await alongside(conn)
            first = await postings.claim(conn, idempotency_key, operation, request_hash)
            if first is not None:
                return first
            result = await work(conn)
            await postings.store_result(conn, idempotency_key, result)
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
                await postings.backoff(attempt)
        raise AssertionError("unreachable")


__all__ = ["Ledger", "LedgerError"]
