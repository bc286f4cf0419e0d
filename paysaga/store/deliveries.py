"""Webhook deliveries of the event feed: claimed under a lease, then delivered, retried or dead.

A merchant's events form one lane, sent one at a time in sequence order. The outbox is a cursor
per merchant over the feed (`webhook_cursors`), not a row per event: `delivered_through` is the
highest sequence done with, and the cursor carries the state of the next event, the lane's head
(its attempts, next attempt and last error) and the lane's lease. A dispatcher claims free lanes
by locking due cursors whose merchant has events past them (`FOR UPDATE SKIP LOCKED`) and leases
each with the events right behind it, read by the feed's (merchant, sequence) key: the cost of a
claim does not grow with the backlog. While a cursor is leased or waiting for its head's retry, no
dispatcher claims anything of that merchant, so event N+1 never overtakes N; a final refusal or
the give-up age dead-letters the head (a row of `event_deliveries`) and the cursor moves on.

A dispatcher that dies leaves its lease to expire: whatever it had not marked is sent again,
never skipped. Every write after the claim names the lease it holds (`lease_until` as claimed),
so a dispatcher whose lease ran out and was taken over writes nothing.

`event_deliveries` keeps the exceptions: dead letters, the ones an operator redelivers (sent
from their own rows, by `CLAIM_REDELIVERIES`: the lanes of earlier releases), and events that
took more than one attempt. `webhook_delivery_states` shows every event's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paysaga.store.sequencer import number_all
from paysaga.store.sql import TableRow, Tables

# The cursors' lanes: lock up to `lanes` due, unleased cursors whose merchant has events past
# them, lease them, and hand out the next `per_lane` events of each by the feed's key.
CLAIM = """
WITH due AS MATERIALIZED (
    SELECT c.merchant_id FROM webhook_cursors c JOIN merchants m ON m.id = c.merchant_id
    WHERE m.last_event_sequence > c.delivered_through AND c.next_attempt_at <= now()
      AND (c.lease_until IS NULL OR c.lease_until <= now())
    ORDER BY c.next_attempt_at
    LIMIT %(lanes)s
    FOR UPDATE OF c SKIP LOCKED
), leased AS (
    UPDATE webhook_cursors c
    SET lease_until = now() + make_interval(secs => %(lease_seconds)s), updated_at = now()
    FROM due WHERE c.merchant_id = due.merchant_id
    RETURNING c.merchant_id, c.delivered_through, c.attempts, c.lease_until
)
SELECT e.id AS event_id, l.merchant_id, e.sequence,
    CASE WHEN e.sequence = next.sequence THEN l.attempts ELSE 0 END AS attempts,
    l.lease_until, true AS cursor, e.payload::text AS body, m.webhook_url, m.webhook_secret,
    CASE WHEN m.previous_webhook_secret_expires_at > now() THEN m.previous_webhook_secret END
        AS previous_webhook_secret
FROM leased l
JOIN merchants m ON m.id = l.merchant_id
CROSS JOIN LATERAL (
    SELECT min(x.sequence) AS sequence FROM events x
    WHERE x.merchant_id = l.merchant_id AND x.sequence > l.delivered_through
) next
CROSS JOIN LATERAL (
    SELECT x.id, x.sequence, x.payload FROM events x
    WHERE x.merchant_id = l.merchant_id AND x.sequence > l.delivered_through
    ORDER BY x.sequence
    LIMIT %(per_lane)s
) e
"""

# The head's failed attempt: again after `delay` (never later than the give-up time), or given
# up when the event is that old already (a dead letter; the cursor moves on, its lease kept).
RETRY = """
WITH head AS (
    SELECT e.id, e.created_at + make_interval(days => %(give_up_days)s) AS give_up_at,
        now() >= e.created_at + make_interval(days => %(give_up_days)s) AS dead
    FROM events e WHERE e.id = %(event_id)s
), cursor AS (
    UPDATE webhook_cursors c SET
        attempts = CASE WHEN head.dead THEN 0 ELSE c.attempts + 1 END,
        delivered_through = CASE WHEN head.dead THEN %(sequence)s ELSE c.delivered_through END,
        lease_until = CASE WHEN head.dead THEN c.lease_until END,
        last_error = CASE WHEN head.dead THEN NULL ELSE %(error)s END,
        next_attempt_at = CASE WHEN head.dead THEN now()
            ELSE LEAST(now() + make_interval(secs => %(delay_seconds)s), head.give_up_at) END,
        updated_at = now()
    FROM head
    WHERE c.merchant_id = %(merchant_id)s AND c.lease_until = %(lease)s
      AND c.delivered_through < %(sequence)s
    RETURNING head.dead, c.attempts
), dead AS (
    INSERT INTO event_deliveries (event_id, merchant_id, sequence, status, attempts, last_error)
    SELECT %(event_id)s, %(merchant_id)s, %(sequence)s, 'dead', %(attempts)s + 1,
        format('not taken within %%s days (last: %%s)', %(give_up_days)s, %(error)s::text)
    FROM cursor WHERE cursor.dead
    ON CONFLICT (event_id) DO NOTHING
)
SELECT CASE WHEN dead THEN 'dead' ELSE 'pending' END AS status,
    CASE WHEN dead THEN format('not taken within %%s days (last: %%s)', %(give_up_days)s,
        %(error)s::text) ELSE %(error)s END AS last_error
FROM cursor
"""

# The head taken (or refused for good): the cursor moves past it, its lease kept for the rest of
# the lane; the event gets a row only when it is an exception (dead, or taken after failures).
ADVANCE = """
WITH cursor AS (
    UPDATE webhook_cursors c SET delivered_through = %(sequence)s, attempts = 0,
        last_error = NULL, next_attempt_at = now(), updated_at = now()
    WHERE c.merchant_id = %(merchant_id)s AND c.lease_until = %(lease)s
      AND c.delivered_through < %(sequence)s
    RETURNING c.merchant_id
), exception AS (
    INSERT INTO event_deliveries (event_id, merchant_id, sequence, status, attempts, last_error,
        delivered_at)
    SELECT %(event_id)s, %(merchant_id)s, %(sequence)s, %(status)s, %(attempts)s + 1,
        %(error)s, CASE WHEN %(status)s = 'delivered' THEN now() END
    FROM cursor WHERE %(status)s = 'dead' OR %(attempts)s > 0
    ON CONFLICT (event_id) DO NOTHING
)
SELECT merchant_id FROM cursor
"""

# Redeliveries (rows an operator set pending again), as lanes of rows: lock the heads of lanes
# that are free, then lease each head and the
# pending deliveries behind it for as long as they are all due and unleased (a running bool_and).
CLAIM_REDELIVERIES = """
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
RETURNING d.event_id, d.merchant_id, d.sequence, d.attempts, d.lease_until, false AS cursor,
    e.payload::text AS body, m.webhook_url, m.webhook_secret,
    CASE WHEN m.previous_webhook_secret_expires_at > now() THEN m.previous_webhook_secret END
        AS previous_webhook_secret
"""

# A failed attempt: try again after `delay` (never later than the give-up time), or give up when
# the delivery is that old already. The age counts from the delivery's `created_at`: the event's
# time, or the operator's redelivery, which grants a fresh budget.
RETRY_REDELIVERY = """
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
    the event's payload as stored (`body`) and the merchant's own endpoint, if it set one. A
    lane's deliveries share their cursor's lease: renewing it renews theirs."""

    event_id: str
    merchant_id: str
    sequence: int
    attempts: int
    lease_until: datetime
    cursor: bool  # the merchant's cursor holds the lease, not the event's own row
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
    """The dispatcher's reads and writes of `webhook_cursors` and `event_deliveries`."""

    async def claim_deliveries(
        self, lanes: int, per_lane: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Lease up to `per_lane` deliveries of each of up to `lanes` free merchants (cursors
        first, then redeliveries); in lane and sequence order, one lane per merchant."""
        async with self.pool.connection() as conn:  # events a dead writer's sequencer left
            await number_all(conn)
        params = {"lanes": lanes, "per_lane": per_lane, "lease_seconds": lease_seconds}
        rows = await self._all(ClaimedDelivery, CLAIM, params)
        cursor_lanes = {row.merchant_id for row in rows}
        free = lanes - len(cursor_lanes)
        if free > 0:
            redeliveries = await self._all(
                ClaimedDelivery, CLAIM_REDELIVERIES, {**params, "lanes": free}
            )
            # A merchant whose cursor lane is out now sends its redeliveries at the next claim.
            held = [row for row in redeliveries if row.merchant_id in cursor_lanes]
            if held:
                await self.release_deliveries(held)
            rows += [row for row in redeliveries if row.merchant_id not in cursor_lanes]
        return sorted(rows, key=lambda row: (row.merchant_id, row.sequence))

    async def renew_lease(self, delivery: ClaimedDelivery, lease_seconds: float) -> datetime | None:
        """Extend a held lease before sending; the new `lease_until`, None if the lease is lost."""
        if delivery.cursor:
            sql = (
                "UPDATE webhook_cursors SET lease_until = now() + make_interval(secs => %s)"
                " WHERE merchant_id = %s AND lease_until = %s AND delivered_through < %s"
                " RETURNING lease_until"
            )
            params: tuple[object, ...] = (
                lease_seconds,
                delivery.merchant_id,
                delivery.lease_until,
                delivery.sequence,
            )
        else:
            sql = (
                "UPDATE event_deliveries SET lease_until = now() + make_interval(secs => %s)"
                " WHERE event_id = %s AND status = 'pending' AND lease_until = %s"
                " RETURNING lease_until"
            )
            params = (lease_seconds, delivery.event_id, delivery.lease_until)
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def mark_delivered(self, delivery: ClaimedDelivery) -> bool:
        """The merchant answered 2xx; False if the lease was lost meanwhile (another dispatcher
        sends it again: a duplicate, never a gap)."""
        if delivery.cursor:
            return await self._advance(delivery, "delivered", None)
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
            RETRY if delivery.cursor else RETRY_REDELIVERY,
            {
                "event_id": delivery.event_id,
                "merchant_id": delivery.merchant_id,
                "sequence": delivery.sequence,
                "attempts": delivery.attempts,
                "lease": delivery.lease_until,
                "error": error,
                "delay_seconds": delay_seconds,
                "give_up_days": give_up_days,
            },
        )

    async def mark_dead(self, delivery: ClaimedDelivery, error: str) -> bool:
        """Given up on at once (a final refusal): for an operator to redeliver."""
        if delivery.cursor:
            return await self._advance(delivery, "dead", error)
        return await self._execute(
            "UPDATE event_deliveries SET status = 'dead', attempts = attempts + 1,"
            " last_error = %s, lease_until = NULL, updated_at = now()"
            " WHERE event_id = %s AND status = 'pending' AND lease_until = %s RETURNING event_id",
            (error, delivery.event_id, delivery.lease_until),
        )

    async def _advance(self, delivery: ClaimedDelivery, status: str, error: str | None) -> bool:
        return await self._execute(
            ADVANCE,
            {
                "event_id": delivery.event_id,
                "merchant_id": delivery.merchant_id,
                "sequence": delivery.sequence,
                "lease": delivery.lease_until,
                "attempts": delivery.attempts,
                "status": status,
                "error": error,
            },
        )

    async def mark_no_endpoint(self, deliveries: list[ClaimedDelivery], reason: str) -> int:
        """The merchant has nowhere to send to: these events are not sent (the feed has them)."""
        lane = [d for d in deliveries if d.cursor]
        rows = [d for d in deliveries if not d.cursor]
        count = 0
        async with self.pool.connection() as conn:
            if lane:
                first, last = lane[0], lane[-1]
                cur = await conn.execute(
                    "WITH cursor AS (UPDATE webhook_cursors SET delivered_through = %(last)s,"
                    " attempts = 0, last_error = NULL, lease_until = NULL, updated_at = now()"
                    " WHERE merchant_id = %(merchant_id)s AND lease_until = %(lease)s"
                    " AND delivered_through < %(first)s RETURNING merchant_id)"
                    " INSERT INTO webhook_skips (merchant_id, from_sequence, through_sequence,"
                    " reason) SELECT merchant_id, %(first)s, %(last)s, %(reason)s FROM cursor"
                    " ON CONFLICT DO NOTHING",
                    {
                        "merchant_id": first.merchant_id,
                        "lease": first.lease_until,
                        "first": first.sequence,
                        "last": last.sequence,
                        "reason": reason,
                    },
                )
                count += len(lane) if cur.rowcount else 0
            if rows:
                cur = await conn.execute(
                    "UPDATE event_deliveries d SET status = 'no_endpoint', last_error = %s,"
                    " lease_until = NULL, updated_at = now()"
                    " FROM unnest(%s::text[], %s::timestamptz[]) AS held (event_id, lease_until)"
                    " WHERE d.event_id = held.event_id AND d.status = 'pending'"
                    " AND d.lease_until = held.lease_until",
                    (reason, [d.event_id for d in rows], [d.lease_until for d in rows]),
                )
                count += cur.rowcount
        return count

    async def release_deliveries(self, deliveries: list[ClaimedDelivery]) -> int:
        """Give back leases not used (the lane stopped, or ended): claimable again at once."""
        lanes = {(d.merchant_id, d.lease_until) for d in deliveries if d.cursor}
        rows = [d for d in deliveries if not d.cursor]
        count = 0
        async with self.pool.connection() as conn:
            for merchant_id, lease in sorted(lanes):
                cur = await conn.execute(
                    "UPDATE webhook_cursors SET lease_until = NULL, updated_at = now()"
                    " WHERE merchant_id = %s AND lease_until = %s",
                    (merchant_id, lease),
                )
                count += cur.rowcount
            if rows:
                cur = await conn.execute(
                    "UPDATE event_deliveries d SET lease_until = NULL, updated_at = now()"
                    " FROM unnest(%s::text[], %s::timestamptz[]) AS held (event_id, lease_until)"
                    " WHERE d.event_id = held.event_id AND d.status = 'pending'"
                    " AND d.lease_until = held.lease_until",
                    ([d.event_id for d in rows], [d.lease_until for d in rows]),
                )
                count += cur.rowcount
        return count
