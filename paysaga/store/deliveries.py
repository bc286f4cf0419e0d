"""Webhook deliveries of the event feed: claimed under a lease, then delivered, retried or dead.

A merchant's deliveries form one lane, sent one at a time in sequence order: a dispatcher claims
the lane by locking its head (the merchant's lowest pending delivery) with `FOR UPDATE SKIP
LOCKED`, and leases the head and the pending deliveries right behind it. While the head is
leased or waiting for its retry, no dispatcher claims anything of that merchant, so event N+1
never overtakes N; a final refusal or the give-up age turns the head `dead` and the lane moves
on. A dispatcher that dies leaves its leases to expire: whatever it had not marked is sent again,
never skipped. Every write after the claim names the lease it holds (`lease_until` as claimed),
so a dispatcher whose lease ran out and was taken over writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paysaga.store.sql import TableRow, Tables

# One statement, one snapshot: lock the heads of lanes that are free, then lease each head and the
# pending deliveries behind it for as long as they are all due and unleased (a running bool_and).
CLAIM = """
WITH heads AS MATERIALIZED (
    SELECT d.merchant_id, d.sequence FROM event_deliveries d
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.lease_until IS NULL OR d.lease_until <= now())
      AND NOT EXISTS (
          SELECT 1 FROM event_deliveries e
          WHERE e.merchant_id = d.merchant_id AND e.status = 'pending' AND e.sequence < d.sequence
      )
    ORDER BY d.next_attempt_at
    LIMIT %(lanes)s
    FOR UPDATE SKIP LOCKED
),
lane AS (
    SELECT l.event_id, bool_and(
        l.next_attempt_at <= now() AND (l.lease_until IS NULL OR l.lease_until <= now())
    ) OVER (PARTITION BY l.merchant_id ORDER BY l.sequence) AS open
    FROM heads h CROSS JOIN LATERAL (
        SELECT x.event_id, x.merchant_id, x.sequence, x.next_attempt_at, x.lease_until
        FROM event_deliveries x
        WHERE x.merchant_id = h.merchant_id AND x.status = 'pending' AND x.sequence >= h.sequence
        ORDER BY x.sequence
        LIMIT %(per_lane)s
    ) l
)
UPDATE event_deliveries d
SET lease_until = now() + make_interval(secs => %(lease_seconds)s), updated_at = now()
FROM lane, events e, merchants m
WHERE lane.open AND d.event_id = lane.event_id AND e.id = d.event_id AND m.id = d.merchant_id
RETURNING d.event_id, d.merchant_id, d.sequence, d.attempts, d.lease_until,
    e.payload::text AS body, m.webhook_url, m.webhook_secret,
    CASE WHEN m.previous_webhook_secret_expires_at > now() THEN m.previous_webhook_secret END
        AS previous_webhook_secret
"""

# A failed attempt: try again after `delay` (never later than the give-up time), or give up when
# the delivery is that old already. The age counts from the delivery's `created_at`: the event's
# time, or the operator's redelivery, which grants a fresh budget.
RETRY = """
UPDATE event_deliveries
SET attempts = attempts + 1, lease_until = NULL, updated_at = now(),
    status = CASE WHEN now() >= created_at + make_interval(days => %(give_up_days)s)
        THEN 'dead' ELSE 'pending' END,
    last_error = CASE WHEN now() >= created_at + make_interval(days => %(give_up_days)s)
        THEN format('not taken within %%s days (last: %%s)', %(give_up_days)s, %(error)s::text)
        ELSE %(error)s END,
    next_attempt_at = LEAST(
        now() + make_interval(secs => %(delay_seconds)s),
        created_at + make_interval(days => %(give_up_days)s)
    )
WHERE event_id = %(event_id)s AND status = 'pending' AND lease_until = %(lease)s
RETURNING status, last_error
"""


@dataclass(frozen=True)
class ClaimedDelivery(TableRow):
    """A delivery leased to this dispatcher until `lease_until`, with what it needs to send it:
    the event's payload as stored (`body`) and the merchant's own endpoint, if it set one."""

    event_id: str
    merchant_id: str
    sequence: int
    attempts: int
    lease_until: datetime
    body: str
    webhook_url: str | None
    webhook_secret: str | None
    previous_webhook_secret: str | None  # a rotated-out secret still in its grace


@dataclass(frozen=True)
class Outcome(TableRow):
    """A delivery's state after a write: `status` and, unless delivered, why."""

    status: str
    last_error: str | None


class Deliveries(Tables):
    """The dispatcher's reads and writes of `event_deliveries`."""

    async def claim_deliveries(
        self, lanes: int, per_lane: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Lease up to `per_lane` deliveries of each of up to `lanes` free merchants; in lane
        and sequence order."""
        rows = await self._all(
            ClaimedDelivery,
            CLAIM,
            {"lanes": lanes, "per_lane": per_lane, "lease_seconds": lease_seconds},
        )
        return sorted(rows, key=lambda row: (row.merchant_id, row.sequence))

    async def renew_lease(self, delivery: ClaimedDelivery, lease_seconds: float) -> datetime | None:
        """Extend a held lease before sending; the new `lease_until`, None if the lease is lost."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE event_deliveries SET lease_until = now() + make_interval(secs => %s)"
                " WHERE event_id = %s AND status = 'pending' AND lease_until = %s"
                " RETURNING lease_until",
                (lease_seconds, delivery.event_id, delivery.lease_until),
            )
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def mark_delivered(self, delivery: ClaimedDelivery) -> bool:
        """The merchant answered 2xx; False if the lease was lost meanwhile (another dispatcher
        sends it again: a duplicate, never a gap)."""
        return await self._execute(
            "UPDATE event_deliveries SET status = 'delivered', attempts = attempts + 1,"
            " delivered_at = now(), lease_until = NULL, last_error = NULL, updated_at = now()"
            " WHERE event_id = %s AND status = 'pending' AND lease_until = %s RETURNING event_id",
            (delivery.event_id, delivery.lease_until),
        )

    async def schedule_retry(
        self, delivery: ClaimedDelivery, error: str, delay_seconds: float, give_up_days: int
    ) -> Outcome | None:
        """A failed attempt: pending again after the delay, or dead past the give-up age; None if
        the lease was lost."""
        return await self._one(
            Outcome,
            RETRY,
            {
                "event_id": delivery.event_id,
                "lease": delivery.lease_until,
                "error": error,
                "delay_seconds": delay_seconds,
                "give_up_days": give_up_days,
            },
        )

    async def mark_dead(self, delivery: ClaimedDelivery, error: str) -> bool:
        """Given up on at once (a final refusal): for an operator to redeliver."""
        return await self._execute(
            "UPDATE event_deliveries SET status = 'dead', attempts = attempts + 1,"
            " last_error = %s, lease_until = NULL, updated_at = now()"
            " WHERE event_id = %s AND status = 'pending' AND lease_until = %s RETURNING event_id",
            (error, delivery.event_id, delivery.lease_until),
        )

    async def mark_no_endpoint(self, deliveries: list[ClaimedDelivery], reason: str) -> int:
        """The merchant has nowhere to send to: these events are not sent (the feed has them)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE event_deliveries d SET status = 'no_endpoint', last_error = %s,"
                " lease_until = NULL, updated_at = now()"
                " FROM unnest(%s::text[], %s::timestamptz[]) AS held (event_id, lease_until)"
                " WHERE d.event_id = held.event_id AND d.status = 'pending'"
                " AND d.lease_until = held.lease_until",
                (
                    reason,
                    [d.event_id for d in deliveries],
                    [d.lease_until for d in deliveries],
                ),
            )
            return cur.rowcount

    async def release_deliveries(self, deliveries: list[ClaimedDelivery]) -> int:
        """Give back leases not used (the lane stopped): claimable again at once."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE event_deliveries d SET lease_until = NULL, updated_at = now()"
                " FROM unnest(%s::text[], %s::timestamptz[]) AS held (event_id, lease_until)"
                " WHERE d.event_id = held.event_id AND d.status = 'pending'"
                " AND d.lease_until = held.lease_until",
                ([d.event_id for d in deliveries], [d.lease_until for d in deliveries]),
            )
            return cur.rowcount
