"""One merchant's events and webhook dead letters, the part of `MerchantStore` over the feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paysaga.store.events import EventRow
from paysaga.store.pages import Window, keyset_query
from paysaga.store.sequencer import number_if_pending
from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class DeadDeliveryRow(TableRow):
    """A webhook delivery given up on, with the event it was to deliver."""

    event_id: str
    sequence: int
    type: str
    status: str
    attempts: int
    last_error: str | None
    redeliveries: int
    created_at: datetime
    updated_at: datetime


class MerchantEvents:
    """The feed as one merchant sees it (every statement names `merchant_id`)."""

    _tables: Tables
    merchant_id: str

    # ------------------------------------------------------------------ events

    async def list_events(
        self, *, after: int, event_type: str | None, limit: int
    ) -> tuple[list[EventRow], bool]:
        """Events after sequence `after`, in sequence order, optionally of one type (the
        merchant's committed events numbered first: a read sees every committed one)."""
        async with self._tables.pool.connection() as conn:
            await number_if_pending(conn, self.merchant_id)
        rows = await self._tables._all(
            EventRow,
            "SELECT * FROM events WHERE merchant_id = %(merchant_id)s AND sequence > %(after)s"
            " AND (%(type)s::text IS NULL OR type = %(type)s)"
            " ORDER BY sequence LIMIT %(limit)s",
            {
                "merchant_id": self.merchant_id,
                "after": after,
                "type": event_type,
                "limit": limit + 1,
            },
        )
        return rows[:limit], len(rows) > limit

    async def get_event(self, event_id: str) -> EventRow | None:
        async with self._tables.pool.connection() as conn:
            await number_if_pending(conn, self.merchant_id)
        return await self._tables._one(
            EventRow,
            "SELECT * FROM events WHERE id = %s AND merchant_id = %s",
            (event_id, self.merchant_id),
        )

    # ------------------------------------------------------------------ webhook dead letters

    async def list_dead_deliveries(self, window: Window[str]) -> tuple[list[DeadDeliveryRow], bool]:
        """Deliveries given up on, newest event first; the cursors are event ids."""
        page = keyset_query(
            window,
            newest_first=True,
            key="d.sequence",
            cursor_key="(SELECT sequence FROM event_deliveries"
            " WHERE event_id = %(cursor)s AND merchant_id = %(merchant_id)s)",
            order_by=("d.sequence",),
            created="d.created_at",
        )
        rows = await self._tables._all(
            DeadDeliveryRow,
            "SELECT d.event_id, d.sequence, e.type, d.status, d.attempts, d.last_error,"
            " d.redeliveries, d.created_at, d.updated_at"
            " FROM event_deliveries d JOIN events e ON e.id = d.event_id"
            " WHERE d.merchant_id = %(merchant_id)s AND d.status = 'dead'"
            f" {''.join(f' AND {condition}' for condition in page.conditions)}"
            f" ORDER BY {page.order_by} LIMIT %(limit)s",
            {**page.params, "merchant_id": self.merchant_id},
        )
        return page.rows(rows, window.limit)

    async def get_delivery_status(self, event_id: str) -> str | None:
        """The delivery state of one of the merchant's events; None if it has no such event."""
        async with self._tables.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status FROM webhook_delivery_states WHERE event_id = %s"
                " AND merchant_id = %s",
                (event_id, self.merchant_id),
            )
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def redeliver(self, event_id: str) -> DeadDeliveryRow | None:
        """Send a dead delivery again from now, with a fresh retry budget; None unless dead."""
        rows = await self._tables._all(
            DeadDeliveryRow,
            "WITH d AS (UPDATE event_deliveries SET status = 'pending', attempts = 0,"
            " next_attempt_at = now(), lease_until = NULL, redeliveries = redeliveries + 1,"
            " created_at = now(), updated_at = now()"
            " WHERE event_id = %s AND merchant_id = %s AND status = 'dead' RETURNING *)"
            " SELECT d.event_id, d.sequence, e.type, d.status, d.attempts, d.last_error,"
            " d.redeliveries, d.created_at, d.updated_at FROM d JOIN events e ON e.id = d.event_id",
            (event_id, self.merchant_id),
        )
        return rows[0] if rows else None
