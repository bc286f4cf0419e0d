"""Merchants: who owns each customer, payment, account, event and key; and their webhook settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class MerchantRow(TableRow):
    """A row of `merchants`; an empty webhook URL or secret means the installation's default."""

    id: str
    name: str
    webhook_url: str | None
    webhook_secret: str | None
    last_event_sequence: int
    created_at: datetime


class Merchants(Tables):
    """Reads and writes of `merchants`."""

    async def create_merchant(self, merchant_id: str, name: str) -> MerchantRow:
        row = await self._one(
            MerchantRow,
            "INSERT INTO merchants (id, name) VALUES (%s, %s) RETURNING *",
            (merchant_id, name),
        )
        assert row is not None
        return row

    async def ensure_merchant(self, merchant_id: str, name: str) -> None:
        """Create the merchant unless it exists (the merchants the settings' keys name)."""
        await self._execute(
            "INSERT INTO merchants (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING"
            " RETURNING id",
            (merchant_id, name),
        )

    async def get_merchant(self, merchant_id: str) -> MerchantRow | None:
        return await self._one(MerchantRow, "SELECT * FROM merchants WHERE id = %s", (merchant_id,))

    async def set_merchant_webhook(
        self, merchant_id: str, url: str | None, secret: str | None
    ) -> MerchantRow | None:
        """Set the webhook URL and secret (None: none)."""
        return await self._one(
            MerchantRow,
            "UPDATE merchants SET webhook_url = %s, webhook_secret = %s WHERE id = %s RETURNING *",
            (url, secret, merchant_id),
        )
