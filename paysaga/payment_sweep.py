"""The orphan sweep's SQL: payments left `processing` by a saga that never started, payments left
unfinished by a saga that closed, bonuses whose expiry timer is not running.

The API writes the payment row, then starts its workflow; when that start fails (Temporal down)
and the client never retries, the row would stay `processing` forever. A candidate is a row that
no saga ever touched (`updated_at = created_at`; a saga writes its row at every status change and
as soon as a provider takes its call), past a grace period. The activity then asks Temporal
whether its workflow exists, and the ledger whether anything was booked under its keys. Refunds
too: a refund left `processing` by a saga that never started would keep its amount reserved on
its deposit forever.

A saga terminated or reset from the Temporal UI leaves its row in flight: the candidates are the
rows not terminal and not yet parked, untouched for the grace period (a saga at work writes its
row), whose workflow Temporal then shows closed. A bonus granted whose workflow never started
would stay active forever: the candidates are the active bonuses granted lately (their timer
should be running) and those past their expiry (their timer should have ended them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paysaga.store import PaymentRow, RefundRow
from paysaga.store.sql import TableRow, Tables

# A saga's statuses while it runs, before an operator is needed.
IN_FLIGHT = ["processing", "requires_review", "requires_action"]


@dataclass(frozen=True)
class ActiveBonus(TableRow):
    """An active bonus, as its expiry timer's input needs it."""

    id: str
    merchant_id: str
    customer_id: str
    currency: str
    amount: int
    expires_at: datetime


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

    async def quiet_payments_in_flight(
        self, quiet_seconds: float, after_id: str, limit: int
    ) -> list[PaymentRow]:
        """Payments still in flight (not terminal, not parked), unchanged for the grace period."""
        return await self._all(
            PaymentRow,
            "SELECT * FROM payments WHERE status = ANY(%s)"
            " AND updated_at < now() - make_interval(secs => %s) AND id > %s"
            " ORDER BY id LIMIT %s",
            (IN_FLIGHT, quiet_seconds, after_id, limit),
        )

    async def quiet_refunds_in_flight(
        self, quiet_seconds: float, after_id: str, limit: int
    ) -> list[RefundRow]:
        """Refunds still `processing`, unchanged for the grace period."""
        return await self._all(
            RefundRow,
            "SELECT * FROM refunds WHERE status = 'processing'"
            " AND updated_at < now() - make_interval(secs => %s) AND id > %s"
            " ORDER BY id LIMIT %s",
            (quiet_seconds, after_id, limit),
        )

    async def bonuses_to_time(
        self, older_than_seconds: float, granted_within_seconds: float, after_id: str, limit: int
    ) -> list[ActiveBonus]:
        """Active bonuses past the grace period granted within the lookback, or past their
        expiry, by id."""
        return await self._all(
            ActiveBonus,
            "SELECT id, merchant_id, customer_id, currency, amount, expires_at FROM bonuses"
            " WHERE status = 'active' AND created_at < now() - make_interval(secs => %s)"
            " AND (created_at > now() - make_interval(secs => %s) OR expires_at < now())"
            " AND id > %s ORDER BY id LIMIT %s",
            (older_than_seconds, granted_within_seconds, after_id, limit),
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
