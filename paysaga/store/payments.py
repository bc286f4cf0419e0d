"""Payments: the API's view of each payment, written by its saga."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.payments import PaymentStatus
from paysaga.store.sql import TableRow, Tables

TERMINAL = [s.value for s in PaymentStatus if s.is_terminal]


@dataclass(frozen=True)
class PaymentRow(TableRow):
    """A row of `payments`."""

    id: str
    kind: str
    status: str
    customer_id: str
    amount: int
    currency: str
    provider: str | None
    failure_code: str | None
    failure_reason: str | None
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class Payments(Tables):
    """Reads and writes of `payments`."""

    async def insert_payment(
        self,
        payment_id: str,
        kind: str,
        customer_id: str,
        amount: int,
        currency: str,
        provider: str | None,
        details: dict[str, Any],
    ) -> PaymentRow:
        """Insert a payment in `processing`, or return the one already there with this id."""
        row = await self._one(
            PaymentRow,
            "INSERT INTO payments (id, kind, status, customer_id, amount, currency, provider, details)"
            " VALUES (%s, %s, 'processing', %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING *",
            (payment_id, kind, customer_id, amount, currency, provider, json.dumps(details)),
        )
        if row is None:
            row = await self.get_payment(payment_id)
        assert row is not None
        return row

    async def get_payment(self, payment_id: str) -> PaymentRow | None:
        return await self._one(PaymentRow, "SELECT * FROM payments WHERE id = %s", (payment_id,))

    async def update_payment(
        self,
        payment_id: str,
        status: str,
        provider: str | None = None,
        failure_code: str | None = None,
        failure_reason: str | None = None,
    ) -> PaymentRow | None:
        """Move a payment to `status`; a terminal payment never changes again."""
        return await self._one(
            PaymentRow,
            "UPDATE payments SET status = %s, provider = COALESCE(%s, provider),"
            " failure_code = %s, failure_reason = %s, updated_at = now()"
            " WHERE id = %s AND status <> ALL(%s) RETURNING *",
            (status, provider, failure_code, failure_reason, payment_id, TERMINAL),
        )

    async def list_payments(
        self,
        *,
        customer_id: str | None,
        kind: str | None,
        status: str | None,
        limit: int,
        starting_after: str | None,
    ) -> tuple[list[PaymentRow], bool]:
        """Newest first; the cursor is the id of the last payment of the previous page."""
        where = ["(%(customer_id)s::text IS NULL OR customer_id = %(customer_id)s)"]
        where.append("(%(kind)s::text IS NULL OR kind = %(kind)s)")
        where.append("(%(status)s::text IS NULL OR status = %(status)s)")
        if starting_after:
            where.append(
                "(created_at, id) < (SELECT created_at, id FROM payments WHERE id = %(after)s)"
            )
        rows = await self._all(
            PaymentRow,
            f"SELECT * FROM payments WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
            {
                "customer_id": customer_id,
                "kind": kind,
                "status": status,
                "after": starting_after,
                "limit": limit + 1,
            },
        )
        return rows[:limit], len(rows) > limit

    async def count_recent_payments(self, customer_id: str, since: datetime) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM payments WHERE customer_id = %s AND created_at >= %s",
                (customer_id, since),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0
