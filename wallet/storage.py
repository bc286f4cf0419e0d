"""The wallet's SQL: a batch's state read under its customers' locks, its decisions written back.

Everything a batch touches is read by one pipelined group of statements (`read_state`) and
written by another (`send_writes`): multi-row INSERT ... SELECT FROM unnest(...) and upserts,
never a statement per call. No ORM objects: rows become `wallet.models` dataclasses directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

from ledger.batch import BatchTransaction, lock_accounts, post_batch
from ledger.models import Account, AccountKind
from ledger.postings import AccountKey, Conn
from paysaga.store.events import NewEvent, insert_events
from wallet import limits_check
from wallet.models import (
    Bet,
    BetRecord,
    BetStatus,
    BonusRecord,
    BonusStatus,
    Call,
    Credit,
    CustomerKey,
    EndBonus,
    GrantBonus,
    Purse,
    RecordedCall,
    Rollback,
    RoundKey,
    Tombstone,
    TransactionKey,
    TransactionRecord,
    WalletState,
    Win,
    bet_key,
    customer_of,
    transaction_key,
)


@dataclass(frozen=True)
class Wanted:
    """What a batch's calls name: the rows to read for them."""

    customers: list[CustomerKey]
    transactions: list[TransactionKey]  # the game calls' own keys
    bets: list[TransactionKey]  # bets named by wins and rollbacks, and the bet calls' own keys
    # (with the open bets of their rounds, and their bonuses: joined in SQL)
    rounds: list[RoundKey]  # the bet calls' rounds (the named bets' rounds are joined in SQL)
    bonus_ids: list[str]


def wanted(calls: Iterable[Call]) -> Wanted:
    customers: set[CustomerKey] = set()
    transactions: set[TransactionKey] = set()
    bets: set[TransactionKey] = set()
    rounds: set[RoundKey] = set()
    bonus_ids: set[str] = set()
    for call in calls:
        customers.add(customer_of(call))
        if isinstance(call, Bet):
            transactions.add(transaction_key(call))
            bets.add(transaction_key(call))
            rounds.add((call.merchant_id, call.game_provider, call.customer_id, call.round_id))
        elif isinstance(call, Win | Rollback):
            transactions.add(transaction_key(call))
            bets.add(bet_key(call))
        elif isinstance(call, Credit):
            transactions.add(transaction_key(call))
        elif isinstance(call, GrantBonus | EndBonus):
            bonus_ids.add(call.bonus_id)
    return Wanted(
        sorted(customers), sorted(transactions), sorted(bets), sorted(rounds), sorted(bonus_ids)
    )


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Tuples as `width` parallel lists, the shape unnest() takes."""
    return [[row[i] for row in rows] for i in range(width)]


# ---------------------------------------------------------------------- reading


async def read_state(conn: Conn, want: Wanted) -> tuple[WalletState, dict[AccountKey, Account]]:
    """Lock the customers' cash and bonus accounts (ascending ids), then read everything the
    rules need of them; one round trip in pipeline mode. Also the locked accounts, by key."""
    customers = _columns(want.customers, 2)
    transactions = _columns(want.transactions, 3)
    bets = _columns(want.bets, 3)
    rounds = _columns(want.rounds, 4)
    cursors = [
        await conn.execute(_LOCK_CUSTOMER_ACCOUNTS, customers),
        await conn.execute(_CUSTOMERS, customers),
        await conn.execute(_RECORDED, [*transactions, *bets]),
        await conn.execute(_BETS, bets),
        await conn.execute(_TOMBSTONES, bets),
        await conn.execute(_CLOSED_ROUNDS, [*rounds, *bets]),
        await conn.execute(_BONUSES, [*customers, want.bonus_ids, *bets]),
    ]
    gate_cursors = await limits_check.query(conn, customers, bets)
    rows = [await cur.fetchall() for cur in cursors]
    state = WalletState()
    accounts = _fill_purses(state, rows[0])
    for merchant_id, customer_id, status in rows[1]:
        state.customers.add((merchant_id, customer_id))
        if status == "blocked":
            state.blocked.add((merchant_id, customer_id))
    for m, p, t, customer, call_type, request_hash, outcome, answer in rows[2]:
        state.recorded[(m, p, t)] = RecordedCall(customer, call_type, request_hash, outcome, answer)
    for m, p, t, customer, currency, game, round_id, amount, cash, bonus, status, *rest in rows[3]:
        won, returned_to_bonus, rollback_id, bonus_id = rest
        state.bets[(m, p, t)] = BetRecord(
            customer_id=customer,
            currency=currency,
            game_id=game,
            round_id=round_id,
            amount=amount,
            cash_part=cash,
            bonus_part=bonus,
            status=BetStatus(status),
            won=won,
            returned_to_bonus=returned_to_bonus,
            rollback_transaction_id=rollback_id,
            bonus_id=bonus_id,
        )
    for m, p, t, customer, rollback_id in rows[4]:
        state.tombstones[(m, p, t)] = Tombstone(customer, rollback_id)
    state.closed_rounds.update((m, p, c, r) for m, p, c, r in rows[5])
    for bonus_id, m, customer, currency, status, *rest in rows[6]:
        state.bonuses[bonus_id] = BonusRecord(
            bonus_id, m, customer, currency, BonusStatus(status), *rest
        )
    await limits_check.fill(state, gate_cursors)
    return state, accounts


def _fill_purses(state: WalletState, rows: Sequence[Sequence[Any]]) -> dict[AccountKey, Account]:
    accounts: dict[AccountKey, Account] = {}
    for account_id, merchant_id, owner_id, kind, currency, posted, held, allow_negative in rows:
        account_kind = AccountKind(kind)
        accounts[(merchant_id, owner_id, account_kind, currency)] = Account(
            account_id, merchant_id, owner_id, account_kind, currency, allow_negative
        )
        purse = state.purses.setdefault((merchant_id, owner_id, currency), Purse())
        if account_kind is AccountKind.customer_wallet:
            purse.cash_posted, purse.cash_held = posted, held
        else:
            purse.bonus = posted
    return accounts


_LOCK_CUSTOMER_ACCOUNTS = """
SELECT a.id, a.merchant_id, a.owner_id, a.kind, a.currency, a.posted, a.held, a.allow_negative
FROM ledger_accounts a
JOIN unnest(%b::text[], %b::text[]) AS c(merchant_id, customer_id)
  ON a.merchant_id = c.merchant_id AND a.owner_id = c.customer_id
WHERE a.kind IN ('customer_wallet', 'customer_bonus')
ORDER BY a.id
FOR UPDATE OF a
"""

_CUSTOMERS = """
SELECT c.merchant_id, c.id, c.status FROM customers c
JOIN unnest(%b::text[], %b::text[]) AS k(merchant_id, id)
  ON c.merchant_id = k.merchant_id AND c.id = k.id
"""

# The calls' own records, the named bets' (or whatever call bears their id), and the first
# rollback of each named bet (a later rollback answers it).
_RECORDED = """
WITH named AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]) AS k(m, p, t)
), bet AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]) AS b(m, p, t)
), wanted AS (
    SELECT m, p, t FROM named
    UNION
    SELECT m, p, t FROM bet  -- a named "bet" may be another call: a rollback refuses it
    UNION
    SELECT w.merchant_id, w.game_provider, w.rollback_transaction_id FROM wallet_bets w
    JOIN bet ON (w.merchant_id, w.game_provider, w.transaction_id) = (bet.m, bet.p, bet.t)
    WHERE w.rollback_transaction_id IS NOT NULL
    UNION
    SELECT s.merchant_id, s.game_provider, s.rollback_transaction_id FROM wallet_tombstones s
    JOIN bet ON (s.merchant_id, s.game_provider, s.bet_transaction_id) = (bet.m, bet.p, bet.t)
)
SELECT w.merchant_id, w.game_provider, w.transaction_id, w.customer_id, w.type, w.request_hash,
       w.outcome, w.answer
FROM wallet_transactions w
JOIN wanted ON (w.merchant_id, w.game_provider, w.transaction_id) = (wanted.m, wanted.p, wanted.t)
"""

# The named bets, and the open bets of their rounds (a win that closes a round settles them).
_BETS = """
WITH named AS (
    SELECT w.* FROM wallet_bets w
    JOIN unnest(%b::text[], %b::text[], %b::text[]) AS b(m, p, t)
      ON (w.merchant_id, w.game_provider, w.transaction_id) = (b.m, b.p, b.t)
), wanted AS (
    SELECT * FROM named
    UNION
    SELECT w.* FROM wallet_bets w
    JOIN named n ON (w.merchant_id, w.game_provider, w.customer_id, w.round_id)
                  = (n.merchant_id, n.game_provider, n.customer_id, n.round_id)
    WHERE w.status = 'open'
)
SELECT w.merchant_id, w.game_provider, w.transaction_id, w.customer_id, w.currency, w.game_id,
       w.round_id, w.amount, w.cash_part, w.bonus_part, w.status, w.won, w.returned_to_bonus,
       w.rollback_transaction_id, w.bonus_id
FROM wanted w
"""

_TOMBSTONES = """
SELECT s.merchant_id, s.game_provider, s.bet_transaction_id, s.customer_id,
       s.rollback_transaction_id
FROM wallet_tombstones s
JOIN unnest(%b::text[], %b::text[], %b::text[]) AS b(m, p, t)
  ON (s.merchant_id, s.game_provider, s.bet_transaction_id) = (b.m, b.p, b.t)
"""

# The closed rounds among the bet calls' rounds and the named bets' rounds.
_CLOSED_ROUNDS = """
WITH wanted AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) AS r(m, p, c, r)
    UNION
    SELECT w.merchant_id, w.game_provider, w.customer_id, w.round_id FROM wallet_bets w
    JOIN unnest(%b::text[], %b::text[], %b::text[]) AS b(m, p, t)
      ON (w.merchant_id, w.game_provider, w.transaction_id) = (b.m, b.p, b.t)
)
SELECT o.merchant_id, o.game_provider, o.customer_id, o.round_id FROM wallet_rounds o
JOIN wanted ON (o.merchant_id, o.game_provider, o.customer_id, o.round_id)
             = (wanted.m, wanted.p, wanted.c, wanted.r)
"""

# The customers' active bonuses, the bonuses the calls name, and the named bets' bonuses.
_BONUSES = """
SELECT b.id, b.merchant_id, b.customer_id, b.currency, b.status, b.amount, b.wagering_required,
       b.wagering_remaining, b.expires_at, b.ended_reason, b.max_bet
FROM bonuses b
WHERE b.status = 'active' AND (b.merchant_id, b.customer_id) IN (
        SELECT * FROM unnest(%b::text[], %b::text[]))
   OR b.id = ANY(%b::text[])
   OR b.id IN (
        SELECT w.bonus_id FROM wallet_bets w
        JOIN unnest(%b::text[], %b::text[], %b::text[]) AS k(m, p, t)
          ON (w.merchant_id, w.game_provider, w.transaction_id) = (k.m, k.p, k.t))
"""


async def find_accounts(conn: Conn, keys: Sequence[AccountKey]) -> dict[AccountKey, Account]:
    """Existing accounts by key, unlocked (the write locks them in id order)."""
    cur = await conn.execute(
        "SELECT a.id, a.merchant_id, a.owner_id, a.kind, a.currency, a.allow_negative"
        " FROM ledger_accounts a"
        " JOIN unnest(%b::text[], %b::text[], %b::text[], %b::text[]) AS k(m, o, t, c)"
        " ON a.merchant_id = k.m AND a.owner_id = k.o AND a.kind = k.t AND a.currency = k.c",
        _columns([(m, o, str(k), c) for m, o, k, c in keys], 4),
    )
    found: dict[AccountKey, Account] = {}
    for account_id, merchant_id, owner_id, kind, currency, allow_negative in await cur.fetchall():
        account_kind = AccountKind(kind)
        found[(merchant_id, owner_id, account_kind, currency)] = Account(
            account_id, merchant_id, owner_id, account_kind, currency, allow_negative
        )
    return found


# ---------------------------------------------------------------------- writing


@dataclass
class Writes:
    """A batch's decisions gathered per table: the last state of each bet and bonus wins."""

    postings: list[BatchTransaction] = field(default_factory=list)
    house_account_ids: set[int] = field(default_factory=set)
    records: list[TransactionRecord] = field(default_factory=list)
    bets: dict[TransactionKey, BetRecord] = field(default_factory=dict)
    tombstones: dict[TransactionKey, Tombstone] = field(default_factory=dict)
    closed_rounds: dict[RoundKey, str] = field(default_factory=dict)
    bonuses: dict[str, BonusRecord] = field(default_factory=dict)
    events: dict[str, list[NewEvent]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (
            self.postings
            or self.records
            or self.bets
            or self.tombstones
            or self.closed_rounds
            or self.bonuses
            or self.events
        )


async def send_writes(conn: Conn, writes: Writes) -> list[AsyncCursor[Any]]:
    """Queue every write of the batch (pipeline mode: nothing waits until the commit).

    The merchant-wide accounts (game, bonus funding) are locked here, in ascending id order,
    right before the posting: they are every batch's hot rows, held only for this last step.
    The events are written unnumbered (the sequencer numbers them after the commit). Each
    statement's rows travel as one JSON document (`jsonb_to_recordset`).
    """
    cursors: list[AsyncCursor[Any]] = []
    if writes.postings:
        await lock_accounts(conn, sorted(writes.house_account_ids))
        await post_batch(conn, writes.postings)
    if writes.records:
        await conn.execute(_INSERT_TRANSACTIONS, (Jsonb([_record(r) for r in writes.records]),))
    if writes.bets:
        await conn.execute(_UPSERT_BETS, (Jsonb([_bet(k, b) for k, b in writes.bets.items()]),))
    if writes.tombstones:
        rows = [
            {"m": m, "p": p, "t": t, "c": s.customer_id, "r": s.rollback_transaction_id}
            for (m, p, t), s in writes.tombstones.items()
        ]
        await conn.execute(_INSERT_TOMBSTONES, (Jsonb(rows),))
    if writes.closed_rounds:
        rows = [
            {"m": m, "p": p, "c": c, "r": r, "w": closer}
            for (m, p, c, r), closer in writes.closed_rounds.items()
        ]
        await conn.execute(_INSERT_ROUNDS, (Jsonb(rows),))
    if writes.bonuses:
        await conn.execute(_UPSERT_BONUSES, (Jsonb([_bonus(b) for b in writes.bonuses.values()]),))
    for merchant_id in sorted(writes.events):
        cursors.append(await insert_events(conn, merchant_id, writes.events[merchant_id]))
    return cursors


def _record(r: TransactionRecord) -> dict[str, Any]:
    m, p, t = r.key
    return {
        "m": m,
        "p": p,
        "t": t,
        "customer": r.customer_id,
        "type": r.type,
        "hash": r.request_hash,
        "outcome": r.outcome,
        "answer": r.answer,
        "amount": r.amount,
        "currency": r.currency,
        "cash": r.cash_part,
        "bonus": r.bonus_part,
        "bet": r.bet_transaction_id,
        "round": r.round_id,
        "ledger_key": r.ledger_key,
    }


_INSERT_TRANSACTIONS = """
INSERT INTO wallet_transactions (merchant_id, game_provider, transaction_id, customer_id, type,
    request_hash, outcome, answer, amount, currency, cash_part, bonus_part, bet_transaction_id,
    round_id, ledger_transaction_id)
SELECT v.m, v.p, v.t, v.customer, v.type, v.hash, v.outcome, v.answer, v.amount, v.currency,
       v.cash, v.bonus, v.bet, v.round, l.id
FROM jsonb_to_recordset(%s) AS v(m text, p text, t text, customer text, type text, hash text,
    outcome text, answer jsonb, amount bigint, currency text, cash bigint, bonus bigint,
    bet text, round text, ledger_key text)
LEFT JOIN ledger_transactions l ON l.idempotency_key = v.ledger_key
"""


def _bet(key: TransactionKey, b: BetRecord) -> dict[str, Any]:
    m, p, t = key
    return {
        "m": m,
        "p": p,
        "t": t,
        "customer": b.customer_id,
        "currency": b.currency,
        "game": b.game_id,
        "round": b.round_id,
        "amount": b.amount,
        "cash": b.cash_part,
        "bonus": b.bonus_part,
        "status": str(b.status),
        "won": b.won,
        "returned": b.returned_to_bonus,
        "rollback": b.rollback_transaction_id,
        "bonus_id": b.bonus_id,
    }


_UPSERT_BETS = """
INSERT INTO wallet_bets (merchant_id, game_provider, transaction_id, customer_id, currency,
    game_id, round_id, amount, cash_part, bonus_part, status, won, returned_to_bonus,
    rollback_transaction_id, bonus_id)
SELECT m, p, t, customer, currency, game, round, amount, cash, bonus, status, won, returned,
       rollback, bonus_id
FROM jsonb_to_recordset(%s) AS v(m text, p text, t text, customer text, currency text,
    game text, round text, amount bigint, cash bigint, bonus bigint, status text, won bigint,
    returned bigint, rollback text, bonus_id text)
ON CONFLICT (merchant_id, game_provider, transaction_id) DO UPDATE SET
    status = excluded.status, won = excluded.won, returned_to_bonus = excluded.returned_to_bonus,
    rollback_transaction_id = excluded.rollback_transaction_id, updated_at = now()
"""

_INSERT_TOMBSTONES = """
INSERT INTO wallet_tombstones (merchant_id, game_provider, bet_transaction_id, customer_id,
    rollback_transaction_id)
SELECT m, p, t, c, r FROM jsonb_to_recordset(%s) AS v(m text, p text, t text, c text, r text)
"""

_INSERT_ROUNDS = """
INSERT INTO wallet_rounds (merchant_id, game_provider, customer_id, round_id,
    closed_by_transaction_id)
SELECT m, p, c, r, w FROM jsonb_to_recordset(%s) AS v(m text, p text, c text, r text, w text)
"""


def _bonus(b: BonusRecord) -> dict[str, Any]:
    return {
        "id": b.id,
        "m": b.merchant_id,
        "customer": b.customer_id,
        "currency": b.currency,
        "status": str(b.status),
        "amount": b.amount,
        "required": b.wagering_required,
        "remaining": b.wagering_remaining,
        "expires_at": b.expires_at.isoformat(),
        "reason": b.ended_reason,
        "max_bet": b.max_bet,
    }


_UPSERT_BONUSES = """
INSERT INTO bonuses (id, merchant_id, customer_id, currency, status, amount, wagering_required,
    wagering_remaining, expires_at, ended_reason, max_bet)
SELECT id, m, customer, currency, status, amount, required, remaining, expires_at, reason, max_bet
FROM jsonb_to_recordset(%s) AS v(id text, m text, customer text, currency text, status text,
    amount bigint, required bigint, remaining bigint, expires_at timestamptz, reason text,
    max_bet bigint)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, wagering_remaining = excluded.wagering_remaining,
    ended_reason = excluded.ended_reason, updated_at = now()
"""
