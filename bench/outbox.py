"""The webhook outbox's backlog, as the bench reads it from the database.

The one place that knows how the outbox stores what it still has to deliver (the merchant's
pending deliveries today), so that a new outbox design changes this file only.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, Connection

BACKLOG_QUERY = (
    "SELECT count(*) FROM event_deliveries WHERE merchant_id = %s AND status = 'pending'"
)


def outbox_backlog(conn: Connection[Any], merchant_id: str) -> int:
    """The merchant's events not delivered yet."""
    row = conn.execute(BACKLOG_QUERY, (merchant_id,)).fetchone()
    return int(row[0]) if row else 0


async def outbox_backlog_now(conn: AsyncConnection[Any], merchant_id: str) -> int:
    """`outbox_backlog` on an async connection."""
    cursor = await conn.execute(BACKLOG_QUERY, (merchant_id,))
    row = await cursor.fetchone()
    return int(row[0]) if row else 0
