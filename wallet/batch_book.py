"""A batch's decisions as its writes: postings on real ledger accounts, rows per table.

The customers' accounts come locked from the batch's read; the merchant-wide ones (game,
promotions, bonus funding, owned by the house) are created before the batch's transaction when
a call may need them, then cached: they never change.

The merchant's game account, which every bet and win moves, is split over one sub-account per
writer (`GAME_SHARD`: the house owns shard 0, `<house>~<n>` shard n): a batch locks its writer's
shard only, so that one merchant's batches from different writers do not wait for each other's
commits. It has no overdraft rule, so nothing needs its total under a lock; its balance is the
sum of its shards (the ledger audit checks each shard as any account).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from psycopg import AsyncConnection

from ledger.batch import BatchTransaction
from ledger.models import Account, AccountKind
from ledger.postings import AccountKey, create_accounts
from paysaga.store.events import NewEvent
from wallet import storage
from wallet.models import (
    BONUS,
    BONUS_FUNDING,
    CASH,
    CUSTOMER_KINDS,
    GAME,
    PROMOTIONS,
    Bet,
    Call,
    Credit,
    Decision,
    GrantBonus,
    Posting,
)

GAME_SHARD: ContextVar[int] = ContextVar("wallet_game_shard", default=0)
"""The game sub-account of the running writer (set by each writer task for its batches)."""


def game_owner(house_owner_id: str, shard: int) -> str:
    """The owner id of a game shard: the house's own for shard 0."""
    return house_owner_id if shard == 0 else f"{house_owner_id}~{shard}"


class BatchBook:
    """The writers' cache of merchant-wide accounts, and the decisions-to-writes translation."""

    def __init__(self, house_owner_id: str) -> None:
        self._house = house_owner_id
        self._accounts: dict[AccountKey, Account] = {}  # merchant-wide accounts never change

    async def ensure_accounts(self, conn: AsyncConnection[Any], calls: Sequence[Call]) -> None:
        """Create, before the batch's transaction, the accounts its bets and grants may need."""
        keys: set[AccountKey] = set()
        for call in calls:
            if isinstance(call, Bet):
                keys.add(self._key(call.merchant_id, call.customer_id, GAME, call.currency))
            elif isinstance(call, Credit):  # it may be the customer's first money
                for kind in (CASH, PROMOTIONS):
                    keys.add(self._key(call.merchant_id, call.customer_id, kind, call.currency))
            elif isinstance(call, GrantBonus):
                for kind in (CASH, BONUS, BONUS_FUNDING):
                    keys.add(self._key(call.merchant_id, call.customer_id, kind, call.currency))
        missing = sorted(k for k in keys if k not in self._accounts)
        if not missing:
            return
        for account in await create_accounts(conn, missing):
            key = (account.merchant_id, account.owner_id, account.kind, account.currency)
            if account.kind not in CUSTOMER_KINDS:
                self._accounts[key] = account

    def _key(
        self, merchant_id: str, customer_id: str, kind: AccountKind, currency: str
    ) -> AccountKey:
        if kind in CUSTOMER_KINDS:
            owner = customer_id
        elif kind is GAME:
            owner = game_owner(self._house, GAME_SHARD.get())
        else:
            owner = self._house
        return (merchant_id, owner, kind, currency)

    def _posting_key(self, posting: Posting, kind: AccountKind) -> AccountKey:
        return self._key(posting.merchant_id, posting.customer_id, kind, posting.currency)

    async def _accounts_of(
        self,
        conn: AsyncConnection[Any],
        postings: Sequence[Posting],
        locked: dict[AccountKey, Account],
    ) -> dict[AccountKey, Account]:
        """The accounts the postings move: the customers' from the locked ones (a customer
        account moved unlocked would be a bug), the merchants' from the cache or the database."""
        needed = {self._posting_key(p, kind) for p in postings for kind, _ in p.lines}
        customer = {k for k in needed if k[2] in CUSTOMER_KINDS}
        if not customer <= locked.keys():
            raise RuntimeError(f"customer accounts not locked: {sorted(customer - locked.keys())}")
        unknown = sorted(needed - customer - self._accounts.keys())
        if unknown:  # made by another process: read once, then cached (they never change)
            self._accounts.update(await storage.find_accounts(conn, unknown))
        return {**locked, **{k: self._accounts[k] for k in needed - customer}}

    async def gather(
        self,
        conn: AsyncConnection[Any],
        decisions: Sequence[Decision],
        accounts: dict[AccountKey, Account],
    ) -> storage.Writes:
        """The decisions as the batch's writes, their postings on real accounts."""
        writes = storage.Writes()
        postings: list[Posting] = []
        for decision in decisions:
            postings += decision.postings
            if decision.record is not None:
                writes.records.append(decision.record)
            writes.bets.update(decision.bets)
            if decision.tombstone is not None:
                writes.tombstones[decision.tombstone[0]] = decision.tombstone[1]
            if decision.closed_round is not None:
                writes.closed_rounds[decision.closed_round[0]] = decision.closed_round[1]
            writes.bonuses.update((bonus.id, bonus) for bonus in decision.bonuses)
            for event in decision.events:
                writes.events.setdefault(event.merchant_id, []).append(
                    NewEvent(event.type, event.aggregate_type, event.aggregate_id, event.object)
                )
        known = await self._accounts_of(conn, postings, accounts)
        for posting in postings:
            legs = tuple(
                (known[self._posting_key(posting, kind)], amount) for kind, amount in posting.lines
            )
            writes.postings.append(
                BatchTransaction(
                    posting.idempotency_key, legs, posting.description, posting.metadata
                )
            )
            writes.house_account_ids.update(
                account.id for account, _ in legs if account.kind not in CUSTOMER_KINDS
            )
        return writes
