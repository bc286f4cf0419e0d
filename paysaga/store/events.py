"""The event feed: each merchant's changes, numbered 1, 2, 3, ... in commit order, with no gap.

`append_event` runs inside the transaction that makes the change it reports, on that
transaction's connection: the event exists if and only if the change committed. Its sequence
comes from incrementing the merchant's `last_event_sequence` under the row's lock, held until
commit, so no later event of the merchant can commit before it and a rollback gives the number
back. (A BIGSERIAL would not do: a poller reading after 7 and 9 committed skips 8 for good when
8 commits a moment later.) The table is insert-only, the shape a CDC outbox router streams.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class EventRow(TableRow):
    """A row of `events`; `payload` is the event exactly as the API and webhooks show it."""

    id: str
    merchant_id: str
    sequence: int
    type: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]
    created_at: datetime


async def append_event(
    conn: AsyncConnection[Any],
    merchant_id: str,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    obj: dict[str, Any],
) -> EventRow:
    """Append an event in the caller's open transaction (the webhook outbox's cursor of the
    merchant reaches it: no delivery row)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "UPDATE merchants SET last_event_sequence = last_event_sequence + 1"
        " WHERE id = %s RETURNING last_event_sequence",
        (merchant_id,),
    )
    allocated = await cur.fetchone()
    if allocated is None:
        raise LookupError(f"no merchant {merchant_id}")
    sequence = int(allocated["last_event_sequence"])
    event_id = "evt_" + secrets.token_hex(12)
    payload = {
        "id": event_id,
        "sequence": sequence,
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }
    await cur.execute(
        "INSERT INTO events (id, merchant_id, sequence, type, aggregate_type, aggregate_id,"
        " payload) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
        (event_id, merchant_id, sequence, event_type, aggregate_type, aggregate_id, Jsonb(payload)),
    )
    row = await cur.fetchone()
    assert row is not None
    return EventRow.from_row(row)


@dataclass(frozen=True)
class NewEvent:
    """An event to append: what changed (its type and aggregate) and the object as it is now."""

    type: str
    aggregate_type: str
    aggregate_id: str
    obj: dict[str, Any]


async def append_events(
    conn: AsyncConnection[Any], merchant_id: str, items: Sequence[NewEvent]
) -> list[EventRow]:
    """Append several events of one merchant in the caller's open
    transaction: n sequences from one UPDATE of the merchant's row (`append_event`'s lock)."""
    cur = await insert_events(conn, merchant_id, items)
    rows = await cur.fetchall()
    if len(rows) != len(items):
        raise LookupError(f"no merchant {merchant_id}")
    return [EventRow.from_row(row) for row in rows]


async def insert_events(
    conn: AsyncConnection[Any], merchant_id: str, items: Sequence[NewEvent]
) -> AsyncCursor[dict[str, Any]]:
    """Send `append_events`' one statement and return its cursor unread, so that in pipeline
    mode it travels with the statements around it (and the COMMIT); fetch it for the rows."""
    cur = conn.cursor(row_factory=dict_row)
    rows = [
        {
            "id": "evt_" + secrets.token_hex(12),
            "n": n,
            "type": item.type,
            "aggregate_type": item.aggregate_type,
            "aggregate_id": item.aggregate_id,
            "object": item.obj,
        }
        for n, item in enumerate(items, start=1)
    ]
    await cur.execute(
        _APPEND_EVENTS_SQL,
        {
            "merchant_id": merchant_id,
            "n": len(items),
            "created": int(time.time()),
            "items": Jsonb(rows),
        },
    )
    return cur


_APPEND_EVENTS_SQL = """
WITH allocated AS (
    UPDATE merchants SET last_event_sequence = last_event_sequence + %(n)s
    WHERE id = %(merchant_id)s RETURNING last_event_sequence - %(n)s AS base
), item AS (
    SELECT * FROM jsonb_to_recordset(%(items)s) AS i(id text, n bigint, type text,
        aggregate_type text, aggregate_id text, object jsonb)
), event AS (
    INSERT INTO events (id, merchant_id, sequence, type, aggregate_type, aggregate_id, payload)
    SELECT item.id, %(merchant_id)s, allocated.base + item.n, item.type, item.aggregate_type,
           item.aggregate_id,
           jsonb_build_object(
               'id', item.id, 'sequence', allocated.base + item.n, 'type', item.type,
               'created', %(created)s::bigint, 'data', jsonb_build_object('object', item.object))
    FROM allocated, item
    RETURNING *
)
SELECT * FROM event ORDER BY sequence
"""


# The mark is the highest purged sequence, not "the oldest kept minus one": an event's time and
# its sequence need not agree, so a purge may leave an older sequence and take a newer one.
PURGE_EVENTS = """
WITH purged AS (
    DELETE FROM events WHERE id IN (
        SELECT id FROM events WHERE created_at < now() - make_interval(days => %s) LIMIT %s
    ) RETURNING merchant_id, sequence
), marked AS (
    UPDATE merchants m SET events_purged_through = GREATEST(m.events_purged_through, p.top)
    FROM (SELECT merchant_id, max(sequence) AS top FROM purged GROUP BY merchant_id) p
    WHERE m.id = p.merchant_id
)
SELECT count(*) FROM purged
"""


class Events(Tables):
    """The feed's reads that are not a merchant's own (those are in `MerchantStore`)."""

    async def purge_events(self, older_than_days: int, batch: int = 1000) -> int:
        """Delete events (and their deliveries) older than the retention, and raise each
        merchant's purge mark in the same transaction; how many went."""
        purged = 0
        while True:
            async with self.pool.connection() as conn:
                cur = await conn.execute(PURGE_EVENTS, (older_than_days, batch))
                row = await cur.fetchone()
                count = int(row[0]) if row else 0
                purged += count
            if count < batch:
                return purged
