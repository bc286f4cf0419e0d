"""Self-exclusion and loss limits inside the wallet's batch: read with its state, checked per bet.

`query` sends three statements in the batch's read pipeline (no extra round trip): the customers
self-excluded now, and for each customer and currency with limits, the limits in force and the
losses of the last 24 hours, 7 days and 30 days (bets minus their wins; refused and rolled-back
bets count for nothing), and when the bets the batch names were placed. Those reads happen under the customers' account locks, so no other
batch of theirs can bet meanwhile; within the batch `fold` keeps the losses current: a bet adds
its amount to every period, and a win or rollback takes what it returns off the periods its bet
was placed in (the named bets' times are read with the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncCursor

from domain.limits import PERIODS, Limits, room_left
from ledger.postings import Conn
from wallet.errors import CustomerSelfExcluded, LossLimitReached, WalletError
from wallet.models import GAME, Bet, CustomerKey, Decision, TransactionKey, WalletState


@dataclass
class Gate:
    """What responsible gambling says of one customer during a batch."""

    self_excluded: bool = False
    loss_limits: dict[str, dict[str, int | None]] = field(default_factory=dict)  # currency ->
    losses: dict[str, dict[str, int]] = field(default_factory=dict)  # currency -> period ->
    bet_times: dict[TransactionKey, datetime] = field(default_factory=dict)
    now: datetime | None = None


_SELF_EXCLUDED = """
SELECT c.merchant_id, c.id FROM customers c
JOIN unnest(%b::text[], %b::text[]) AS k(merchant_id, id)
  ON c.merchant_id = k.merchant_id AND c.id = k.id
WHERE c.self_excluded_until > now()
"""

_LOSSES = """
SELECT l.merchant_id, l.customer_id, l.currency, l.limits, l.pending, now(),
       COALESCE(SUM(b.amount - b.won) FILTER (WHERE b.created_at > now() - interval '24 hours'), 0),
       COALESCE(SUM(b.amount - b.won) FILTER (WHERE b.created_at > now() - interval '7 days'), 0),
       COALESCE(SUM(b.amount - b.won), 0)
FROM customer_limits l
JOIN unnest(%b::text[], %b::text[]) AS k(merchant_id, id)
  ON l.merchant_id = k.merchant_id AND l.customer_id = k.id
LEFT JOIN wallet_bets b
  ON b.merchant_id = l.merchant_id AND b.customer_id = l.customer_id AND b.currency = l.currency
 AND b.created_at > now() - interval '30 days' AND b.status IN ('open', 'settled')
GROUP BY l.merchant_id, l.customer_id, l.currency, l.limits, l.pending
"""


_BET_TIMES = """
SELECT w.merchant_id, w.customer_id, w.game_provider, w.transaction_id, w.created_at
FROM wallet_bets w
JOIN unnest(%b::text[], %b::text[], %b::text[]) AS b(m, p, t)
  ON (w.merchant_id, w.game_provider, w.transaction_id) = (b.m, b.p, b.t)
"""


async def query(
    conn: Conn, customers: list[list[Any]], bets: list[list[Any]]
) -> list[AsyncCursor[Any]]:
    """Queue the reads (`customers`: the batch's merchant and customer ids, `bets`: the bets
    it names, as columns)."""
    return [
        await conn.execute(_SELF_EXCLUDED, customers),
        await conn.execute(_LOSSES, customers),
        await conn.execute(_BET_TIMES, bets),
    ]


async def fill(state: WalletState, cursors: list[AsyncCursor[Any]]) -> None:
    """Put the reads' results into the state's gates."""
    excluded, losses, bet_times = [await cursor.fetchall() for cursor in cursors]
    for merchant_id, customer_id in excluded:
        _gate(state, (merchant_id, customer_id)).self_excluded = True
    for merchant_id, customer_id, currency, limits, pending, now, *used in losses:
        gate = _gate(state, (merchant_id, customer_id))
        in_force = Limits.from_stored(limits, pending).at(_as_datetime(now))
        gate.loss_limits[currency] = in_force.current["loss"]
        gate.losses[currency] = dict(zip(PERIODS, (int(value) for value in used), strict=True))
        gate.now = _as_datetime(now)
    for merchant_id, customer_id, provider, transaction_id, created_at in bet_times:
        limited = state.gates.get((merchant_id, customer_id))
        if limited is not None:
            limited.bet_times[(merchant_id, provider, transaction_id)] = created_at


def refusal(state: WalletState, call: Bet) -> tuple[type[WalletError], str] | None:
    """Why the bet is refused by self-exclusion or a loss limit; None when it may go on."""
    gate = state.gates.get((call.merchant_id, call.customer_id))
    if gate is None:
        return None
    if gate.self_excluded:
        return CustomerSelfExcluded, f"customer {call.customer_id} is self-excluded"
    limits = gate.loss_limits.get(call.currency)
    if limits is None:
        return None
    room = room_left({"loss": limits}, "loss", gate.losses.get(call.currency, {}))
    if room is not None and call.amount > room:
        detail = f"the bet of {call.amount} would pass the loss limit ({max(room, 0)} left)"
        return LossLimitReached, detail
    return None


def fold(state: WalletState, decision: Decision) -> None:
    """Count an accepted call's effect on its customer's losses for the rest of the batch."""
    record = decision.record
    if record is None or not decision.accepted or decision.replayed or record.currency is None:
        return
    gate = state.gates.get((record.key[0], record.customer_id))
    if gate is None or record.currency not in gate.losses:
        return
    if record.type == "bet":
        placed_at = gate.now
    elif record.bet_transaction_id is None:
        return  # a credit: no bet's loss to change
    else:
        bet = (record.key[0], record.key[1], record.bet_transaction_id)
        placed_at = gate.bet_times.get(bet, gate.now)  # not stored yet: placed in this batch
    assert gate.now is not None and placed_at is not None
    moved = sum(
        amount for posting in decision.postings for kind, amount in posting.lines if kind is GAME
    )
    losses = gate.losses[record.currency]
    for period, length in PERIODS.items():
        if placed_at > gate.now - length:
            losses[period] = losses.get(period, 0) + moved


def _gate(state: WalletState, customer: CustomerKey) -> Gate:
    gate: Gate = state.gates.setdefault(customer, Gate())
    return gate


def _as_datetime(value: Any) -> datetime:
    assert isinstance(value, datetime)
    return value
