"""Self-exclusion, limits and deposit reservations: each decided under the customer's row lock.

Every write here first locks the customer's `customers` row (`FOR UPDATE`), so that a limit
change, a self-exclusion and the deposits counted against them follow one another: two deposits
at once cannot both fit a limit that fits one of them, since the second counts the first's
reservation. Times are the database's `now()` unless the caller gives a clock (tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.limits import PERIODS, PERMANENT_EXCLUSION, Limits, Slots, room_left
from paysaga.store.events import append_event

SELF_EXCLUDED = "customer_self_excluded"
DEPOSIT_LIMIT_EXCEEDED = "deposit_limit_exceeded"
REFUSAL_DETAILS = {
    SELF_EXCLUDED: "the customer is self-excluded: no deposit until the exclusion ends",
    DEPOSIT_LIMIT_EXCEEDED: "the deposit would pass the customer's deposit limit",
}


def self_excluded(until: datetime | None) -> bool:
    """Whether a customer whose exclusion ends at `until` is excluded now."""
    return until is not None and until > datetime.now(UTC)


@dataclass(frozen=True)
class LimitsView:
    """A customer's limits in a currency as the API shows them."""

    customer_id: str
    currency: str
    limits: Limits

    def body(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "currency": self.currency, **self.limits.view()}


async def _lock_customer(
    conn: AsyncConnection[Any], merchant_id: str, customer_id: str, now: datetime | None
) -> tuple[datetime | None, datetime] | None:
    """Lock the customer's row: its `self_excluded_until` and the time now; None if no such
    customer of the merchant."""
    cur = await conn.execute(
        "SELECT self_excluded_until, COALESCE(%s::timestamptz, now()) FROM customers"
        " WHERE id = %s AND merchant_id = %s FOR UPDATE",
        (now, customer_id, merchant_id),
    )
    row = await cur.fetchone()
    return None if row is None else (row[0], row[1])


async def self_exclude(
    pool: AsyncConnectionPool, merchant_id: str, customer_id: str, days: int | None
) -> bool:
    """Exclude the customer for `days` from now, or for good (None); False if no such customer.

    A shorter
    period than the one in force changes nothing; a longer one extends it, with a
    `customer.self_excluded` event in the same transaction.
    """
    async with pool.connection() as conn, conn.transaction():
        locked = await _lock_customer(conn, merchant_id, customer_id, None)
        if locked is None:
            return False
        current, at = locked
        until = PERMANENT_EXCLUSION if days is None else at + timedelta(days=days)
        if current is not None and current >= until:
            return True
        await conn.execute(
            "UPDATE customers SET self_excluded_until = %s, updated_at = now() WHERE id = %s",
            (until, customer_id),
        )
        await append_event(
            conn,
            merchant_id,
            "customer.self_excluded",
            "customer",
            customer_id,
            {"id": customer_id, "self_excluded_until": until.isoformat()},
        )
        return True


async def database_now(pool: AsyncConnectionPool) -> datetime:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT now()")
        row = await cur.fetchone()
        assert row is not None
        value: datetime = row[0]
        return value


async def _stored_limits(
    conn: AsyncConnection[Any], merchant_id: str, customer_id: str, currency: str
) -> Limits | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT limits, pending FROM customer_limits"
        " WHERE merchant_id = %s AND customer_id = %s AND currency = %s",
        (merchant_id, customer_id, currency),
    )
    row = await cur.fetchone()
    return None if row is None else Limits.from_stored(row["limits"], row["pending"])


async def get_limits(
    pool: AsyncConnectionPool,
    merchant_id: str,
    customer_id: str,
    currency: str,
    now: datetime | None = None,
) -> LimitsView:
    """The customer's limits at `now` (none set: every slot null)."""
    async with pool.connection() as conn:
        stored = await _stored_limits(conn, merchant_id, customer_id, currency)
    now = now or await database_now(pool)
    return LimitsView(customer_id, currency, (stored or Limits()).at(now))


async def set_limits(
    pool: AsyncConnectionPool,
    merchant_id: str,
    customer_id: str,
    currency: str,
    requested: Slots,
    who: tuple[str, str],
    now: datetime | None = None,
) -> LimitsView | None:
    """Ask for new limits: lower at once, higher or removed in 24 hours; the change audited
    (who: the key's actor and name) and a `customer.limits_changed` event. None: no customer."""
    async with pool.connection() as conn, conn.transaction():
        locked = await _lock_customer(conn, merchant_id, customer_id, now)
        if locked is None:
            return None
        _, at = locked
        before = (await _stored_limits(conn, merchant_id, customer_id, currency) or Limits()).at(at)
        after = before.changed_to(requested, at)
        view = LimitsView(customer_id, currency, after)
        limits, pending = after.stored()
        await conn.execute(
            "INSERT INTO customer_limits (merchant_id, customer_id, currency, limits, pending)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (merchant_id, customer_id, currency)"
            " DO UPDATE SET limits = excluded.limits, pending = excluded.pending,"
            " updated_at = now()",
            (merchant_id, customer_id, currency, Jsonb(limits), Jsonb(pending)),
        )
        old = LimitsView(customer_id, currency, before).body()
        await conn.execute(
            "INSERT INTO customer_limit_changes (merchant_id, customer_id, currency, actor,"
            " key_name, old, new, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (merchant_id, customer_id, currency, *who, Jsonb(old), Jsonb(view.body()), at),
        )
        await append_event(
            conn, merchant_id, "customer.limits_changed", "customer", customer_id, view.body()
        )
        return view


async def limit_changes(
    pool: AsyncConnectionPool, merchant_id: str, customer_id: str
) -> list[dict[str, Any]]:
    """The audit of the customer's limit changes, oldest first."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT currency, actor, key_name, old, new, changed_at FROM customer_limit_changes"
            " WHERE merchant_id = %s AND customer_id = %s ORDER BY id",
            (merchant_id, customer_id),
        )
        return list(await cur.fetchall())


_DEPOSITS_USED = """
SELECT COALESCE(SUM(amount) FILTER (WHERE created_at > %(now)s - interval '24 hours'), 0),
       COALESCE(SUM(amount) FILTER (WHERE created_at > %(now)s - interval '7 days'), 0),
       COALESCE(SUM(amount), 0)
FROM (
    SELECT p.amount, p.created_at FROM payments p
    WHERE p.merchant_id = %(m)s AND p.customer_id = %(c)s AND p.currency = %(cur)s
      AND p.kind = 'deposit' AND p.status NOT IN ('failed', 'canceled') AND p.id <> %(p)s
      AND p.created_at > %(now)s - interval '30 days'
    UNION ALL
    SELECT r.amount, r.created_at FROM deposit_reservations r
    WHERE r.merchant_id = %(m)s AND r.customer_id = %(c)s AND r.currency = %(cur)s
      AND r.created_at > %(now)s - interval '30 days' AND r.payment_id <> %(p)s
      AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = r.payment_id)
) deposits
"""


async def reserve_deposit(
    pool: AsyncConnectionPool,
    merchant_id: str,
    customer_id: str,
    currency: str,
    amount: int,
    payment_id: str,
    now: datetime | None = None,
) -> str | None:
    """Count a new deposit against the customer's self-exclusion and deposit limits, before any
    charge: the refusal's code, or None when it may go (its amount then reserved)."""
    async with pool.connection() as conn, conn.transaction():
        locked = await _lock_customer(conn, merchant_id, customer_id, now)
        if locked is None:
            return None  # the payment's own insert tells the caller of the unknown customer
        excluded_until, at = locked
        if excluded_until is not None and excluded_until > at:
            return SELF_EXCLUDED
        stored = await _stored_limits(conn, merchant_id, customer_id, currency)
        limits = (stored or Limits()).at(at)
        if all(value is None for value in limits.current["deposit"].values()):
            return None
        params = {"m": merchant_id, "c": customer_id, "cur": currency, "now": at, "p": payment_id}
        cur = await conn.execute(_DEPOSITS_USED, params)
        row = await cur.fetchone()
        assert row is not None
        used = dict(zip(PERIODS, (int(value) for value in row), strict=True))
        room = room_left(limits.current, "deposit", used)
        if room is not None and amount > room:
            return DEPOSIT_LIMIT_EXCEEDED
        await conn.execute(
            "INSERT INTO deposit_reservations (payment_id, merchant_id, customer_id, currency,"
            " amount, created_at) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (payment_id) DO NOTHING",
            (payment_id, merchant_id, customer_id, currency, amount, at),
        )
        return None
