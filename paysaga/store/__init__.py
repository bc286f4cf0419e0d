"""SQL of the payments service's own tables, one module per resource, each with its typed row.

`Store` gathers them behind one object, so a route or an activity takes a single dependency.
"""

from __future__ import annotations

from paysaga.store.api_keys import ApiKeyRow, ApiKeys
from paysaga.store.customers import CustomerRow, Customers
from paysaga.store.idempotency import IdempotencyKeys, IdempotencyRow
from paysaga.store.ops_audit import OpsActionRow, OpsAudit
from paysaga.store.payments import PaymentRow, Payments
from paysaga.store.quotes import QuoteRow, Quotes
from paysaga.store.webhooks import ProviderWebhooks

__all__ = [
    "ApiKeyRow",
    "CustomerRow",
    "IdempotencyRow",
    "OpsActionRow",
    "PaymentRow",
    "QuoteRow",
    "Store",
]


class Store(Customers, Payments, Quotes, IdempotencyKeys, ProviderWebhooks, ApiKeys, OpsAudit):
    """Reads and writes of the service's tables; one short SQL statement per call."""

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")
