"""Merchants: who owns each customer, payment, account, event and key; and their webhook settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    # The secret a rotation replaced, signing beside the new one until it expires (a grace in
    # which the merchant's receiver rolls over); past its expiry it signs nothing.
    previous_webhook_secret: str | None
    previous_webhook_secret_expires_at: datetime | None
    events_purged_through: int  # the highest sequence retention has purged (0: none)
    compliance: dict[str, Any]  # the AML monitoring rules (risk/aml.py); {}: all off


# Every SET expression reads the row as it was: `m.webhook_secret` is the one being replaced. A
# NULL grace is "not said": the default for a rotation, no change for a running grace.
SET_WEBHOOK = """
WITH sent AS (
    SELECT %(secret)s::text AS secret, make_interval(secs => %(grace)s::float8) AS grace,
        make_interval(secs => %(default_grace)s::float8) AS default_grace
)
UPDATE merchants m SET
    previous_webhook_secret = CASE
        WHEN m.webhook_secret IS DISTINCT FROM sent.secret THEN CASE
            WHEN sent.secret IS NOT NULL
                AND COALESCE(sent.grace, sent.default_grace) > interval '0'
            THEN m.webhook_secret END
        WHEN sent.grace = interval '0' THEN NULL
        ELSE m.previous_webhook_secret END,
    previous_webhook_secret_expires_at = CASE
        WHEN m.webhook_secret IS DISTINCT FROM sent.secret THEN CASE
            WHEN sent.secret IS NOT NULL AND m.webhook_secret IS NOT NULL
                AND COALESCE(sent.grace, sent.default_grace) > interval '0'
            THEN now() + COALESCE(sent.grace, sent.default_grace) END
        WHEN sent.grace = interval '0' THEN NULL
        WHEN sent.grace IS NOT NULL AND m.previous_webhook_secret_expires_at > now()
            THEN now() + sent.grace
        ELSE m.previous_webhook_secret_expires_at END,
    webhook_url = %(url)s,
    webhook_secret = sent.secret
FROM sent WHERE m.id = %(merchant_id)s
RETURNING m.*
"""


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
        self,
        merchant_id: str,
        url: str | None,
        secret: str | None,
        grace_seconds: float | None = None,
        default_grace_seconds: float = 0,
    ) -> MerchantRow | None:
        """Set the webhook URL and secret (None: none). A new secret replacing one keeps the old
        signing for `grace_seconds` (None: `default_grace_seconds`; 0: not at all). With the
        same secret, `grace_seconds` re-times a running grace from now (0 ends it)."""
        params = {
            "secret": secret,
            "grace": grace_seconds,
            "default_grace": default_grace_seconds,
            "url": url,
            "merchant_id": merchant_id,
        }
        return await self._one(MerchantRow, SET_WEBHOOK, params)
