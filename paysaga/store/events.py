"""The event feed: each merchant's changes, numbered 1, 2, 3, ... in commit order, with no gap.

`append_event` runs inside the transaction that makes the change it reports, on that
transaction's connection: the event exists if and only if the change committed. It is written
unnumbered (`sequence` null), so that no writer holds a merchant-wide lock until its commit; the
sequencer (`paysaga.store.sequencer`) numbers committed events afterwards, in the order they were
written, from the merchant's `last_event_sequence`. A rollback leaves no event and takes no
number. (A BIGSERIAL would not do: a poller reading after 7 and 9 committed skips 8 for good when
8 commits a moment later.) The table is insert-only but for that number, the shape a CDC outbox
router streams.
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
    sequence: int | None  # None until the sequencer numbered it (never in a feed read)
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
    event_id = "evt_" + secrets.token_hex(12)
    payload = {
        "id": event_id,
        "sequence": None,
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }
    await cur.execute(
        "INSERT INTO events (id, merchant_id, type, aggregate_type, aggregate_id, payload)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
        (event_id, merchant_id, event_type, aggregate_type, aggregate_id, Jsonb(payload)),
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
    """Append several events of one merchant, unnumbered, in the caller's open transaction
    (in the order given: the sequencer numbers them in that order)."""
    cur = await insert_events(conn, merchant_id, items)
    rows = await cur.fetchall()
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
INSERT INTO events (id, merchant_id, type, aggregate_type, aggregate_id, payload)
SELECT i.id, %(merchant_id)s, i.type, i.aggregate_type, i.aggregate_id,
       jsonb_build_object(
           'id', i.id, 'sequence', null, 'type', i.type, 'created', %(created)s::bigint,
           'data', jsonb_build_object('object', i.object))
FROM jsonb_to_recordset(%(items)s) AS i(id text, n bigint, type text, aggregate_type text,
    aggregate_id text, object jsonb)
ORDER BY i.n
RETURNING *
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
