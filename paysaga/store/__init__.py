"""SQL of the payments service's own tables, one module per resource, each with its typed row.

`Store` gathers them behind one object, so a route or an activity takes a single dependency.
"""

from __future__ import annotations

from paysaga.store.api_keys import ApiKeyRow, ApiKeys
from paysaga.store.customers import CustomerRow, Customers, sealed_customer
from paysaga.store.deliveries import Deliveries
from paysaga.store.disputes import DisputeRow, Disputes, dispute_object
from paysaga.store.events import EventRow, Events
from paysaga.store.idempotency import IdempotencyKeys, IdempotencyRow
from paysaga.store.merchant_events import DeadDeliveryRow
from paysaga.store.merchant_store import MerchantStore
from paysaga.store.merchants import MerchantRow, Merchants
from paysaga.store.ops_audit import OpsActionRow, OpsAudit
from paysaga.store.payments import PaymentRow, Payments, payment_object
from paysaga.store.provider_accounts import AccountSecrets, ProviderAccountRow, ProviderAccounts
from paysaga.store.quotes import QuoteRow, Quotes
from paysaga.store.refunds import RefundRow, Refunds, refund_object
from paysaga.store.webhooks import ProviderWebhooks, WebhookArrival

__all__ = [
    "AccountSecrets",
    "ApiKeyRow",
    "CustomerRow",
    "DeadDeliveryRow",
    "DisputeRow",
    "EventRow",
    "IdempotencyRow",
    "MerchantRow",
    "MerchantStore",
    "OpsActionRow",
    "PaymentRow",
    "ProviderAccountRow",
    "QuoteRow",
    "RefundRow",
    "Store",
    "WebhookArrival",
    "dispute_object",
    "payment_object",
    "refund_object",
    "sealed_customer",
]


class Store(
    Merchants,
    Customers,
    Payments,
    Quotes,
    Refunds,
    Disputes,
    IdempotencyKeys,
    ProviderWebhooks,
    ApiKeys,
    OpsAudit,
    Events,
    Deliveries,
    ProviderAccounts,
):
    """Reads and writes of the service's tables, whoever's they are: for the worker and the
    platform. The API reads a merchant's objects only through `for_merchant`."""

    def for_merchant(self, merchant_id: str) -> MerchantStore:
        """The tables as this merchant sees them."""
        return MerchantStore(self, merchant_id)

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")
