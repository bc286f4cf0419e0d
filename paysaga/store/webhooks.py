"""Provider webhooks already delivered to their saga: the dedupe record of (provider, event id)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.rows import dict_row

from paysaga.store.payments import TERMINAL as PAYMENT_TERMINAL
from paysaga.store.refunds import TERMINAL as REFUND_TERMINAL
from paysaga.store.sql import TableRow, Tables, one_trip


@dataclass(frozen=True)
class WebhookArrival(TableRow):
    """What one statement learnt of a provider event as it arrived.

    `seen`: the event was recorded before (a duplicate). `saga_ended`: the row of the saga it is
    for (a payment's, or a refund's) was already in a terminal status. `recorded`: this statement
    recorded the event (only when the saga had ended and the event was new).
    """

    seen: bool
    saga_ended: bool
    recorded: bool
    # The saga is a deposit in `processing` that has not written its provider: it is waiting for
    # its charge's answer, or has a final one in hand and is booking it (`batch_status_writes`).
    saga_unannounced: bool = False


# One round trip: the dedupe check, the saga row's status, and (when that saga has ended, so that
# no signal is to be sent first) the dedupe record itself. Every CTE reads the snapshot taken
# before the INSERT, so `seen` is whether the event was there before this statement.
_ARRIVAL = """
WITH seen AS (
    SELECT EXISTS (
        SELECT 1 FROM provider_webhook_events
        WHERE provider = %(provider)s AND event_id = %(event_id)s
    ) AS seen
), ended AS (
    SELECT COALESCE((SELECT status = ANY(%(payment_terminal)s) FROM payments
                     WHERE id = %(saga_payment_id)s), false)
        OR COALESCE((SELECT status = ANY(%(refund_terminal)s) FROM refunds
                     WHERE id = %(saga_refund_id)s), false) AS saga_ended
), unannounced AS (
    SELECT EXISTS (
        SELECT 1 FROM payments
        WHERE id = %(saga_payment_id)s AND kind = 'deposit' AND status = 'processing'
          AND provider IS NULL
    ) AS saga_unannounced
), recorded AS (
    INSERT INTO provider_webhook_events (provider, event_id, payment_id, event_type)
    SELECT %(provider)s, %(event_id)s, %(payment_id)s, %(event_type)s
    FROM seen, ended WHERE ended.saga_ended AND NOT seen.seen
    ON CONFLICT DO NOTHING RETURNING event_id
)
SELECT seen.seen, ended.saga_ended, EXISTS (SELECT 1 FROM recorded) AS recorded,
       unannounced.saga_unannounced
FROM seen, ended, unannounced
"""


class ProviderWebhooks(Tables):
    """Reads and writes of `provider_webhook_events`; no caller needs a whole row."""

    async def webhook_seen(self, provider: str, event_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM provider_webhook_events WHERE provider = %s AND event_id = %s",
                (provider, event_id),
            )
            return await cur.fetchone() is not None

    async def webhook_arrived(
        self,
        provider: str,
        event_id: str,
        payment_id: str | None,
        event_type: str,
        *,
        saga_payment_id: str | None = None,
        saga_refund_id: str | None = None,
    ) -> WebhookArrival:
        """In one statement: whether the event was seen, whether its saga's row (the payment
        `saga_payment_id`, or the refund `saga_refund_id`) is terminal, and, if it is and the
        event is new, record the event (as `record_webhook` would)."""
        params = {
            "provider": provider,
            "event_id": event_id,
            "payment_id": payment_id,
            "event_type": event_type,
            "saga_payment_id": saga_payment_id,
            "saga_refund_id": saga_refund_id,
            "payment_terminal": PAYMENT_TERMINAL,
            "refund_terminal": REFUND_TERMINAL,
        }
        async with self.pool.connection() as conn:
            async with one_trip(conn):  # BEGIN, the statement and COMMIT: one round trip
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(_ARRIVAL, params)
            row = await cur.fetchone()
        assert row is not None  # the statement always returns its one row
        return WebhookArrival.from_row(row)

    async def record_webhook(
        self, provider: str, event_id: str, payment_id: str | None, event_type: str
    ) -> None:
        await self._execute(
            "INSERT INTO provider_webhook_events (provider, event_id, payment_id, event_type)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id",
            (provider, event_id, payment_id, event_type),
        )
