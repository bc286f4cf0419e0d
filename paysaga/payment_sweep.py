"""The orphan sweep's SQL: payments left `processing` by a saga that never started.

The API writes the payment row, then starts its workflow; when that start fails (Temporal down)
and the client never retries, the row would stay `processing` forever. A candidate is a row that
no saga ever touched (`updated_at = created_at`; a saga writes its row at every status change and
as soon as a provider takes its call), past a grace period. The activity then asks Temporal
whether its workflow exists, and the ledger whether anything was booked under its keys. Refunds
too: a refund left `processing` by a saga that never started would keep its amount reserved on
its deposit forever.
"""

from __future__ import annotations

from paysaga.store import PaymentRow, RefundRow
from paysaga.store.sql import Tables


class SweepBooks(Tables):
    """Finds the candidates; the Temporal side (does its workflow exist?) is the activity's."""

    async def untouched_processing_payments(
        self, older_than_seconds: float, after_id: str, limit: int
    ) -> list[PaymentRow]:
        """Payments `processing` since their insert, older than the grace period, by id."""
        return await self._all(
            PaymentRow,
            "SELECT * FROM payments WHERE status = 'processing' AND updated_at = created_at"
            " AND created_at < now() - make_interval(secs => %s) AND id > %s"
            " ORDER BY id LIMIT %s",
            (older_than_seconds, after_id, limit),
        )

    async def untouched_processing_refunds(
        self, older_than_seconds: float, after_id: str, limit: int
    ) -> list[RefundRow]:
        """Refunds `processing` since their insert, older than the grace period, by id. A Refund
        saga writes its row only when its status changes: Temporal tells a running one apart."""
        return await self._all(
            RefundRow,
            "SELECT * FROM refunds WHERE status = 'processing' AND updated_at = created_at"
            " AND created_at < now() - make_interval(secs => %s) AND id > %s"
            " ORDER BY id LIMIT %s",
            (older_than_seconds, after_id, limit),
        )

    async def ledger_names(self, payment_id: str) -> bool:
        """Whether any hold or ledger transaction carries this payment's idempotency keys (a
        refund's: pass its key prefix, `<deposit id>:<refund id>`)."""
        prefix = payment_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM ledger_holds WHERE idempotency_key LIKE %(p)s)"
                " OR EXISTS (SELECT 1 FROM ledger_transactions WHERE idempotency_key LIKE %(p)s)",
                {"p": prefix},
            )
            row = await cur.fetchone()
            return bool(row and row[0])
