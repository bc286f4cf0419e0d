"""Provider webhooks already delivered to their saga: the dedupe record of (provider, event id)."""

from __future__ import annotations

from paysaga.store.sql import Tables


class ProviderWebhooks(Tables):
    """Reads and writes of `provider_webhook_events`; no caller needs a whole row."""

    async def webhook_seen(self, provider: str, event_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM provider_webhook_events WHERE provider = %s AND event_id = %s",
                (provider, event_id),
            )
            return await cur.fetchone() is not None

    async def record_webhook(
        self, provider: str, event_id: str, payment_id: str | None, event_type: str
    ) -> None:
        await self._execute(
            "INSERT INTO provider_webhook_events (provider, event_id, payment_id, event_type)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id",
            (provider, event_id, payment_id, event_type),
        )
