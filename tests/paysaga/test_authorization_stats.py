"""Authorization counts for routing, read from a merchant's recent deposits in PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from domain.routing import AuthorizationStats, MethodFamily
from paysaga.store import Store

CARD: dict[str, Any] = {"reason": "priority", "method": "card", "candidates": [], "rates": {}}
BANK = {**CARD, "method": "bank"}


async def merchant_with_customer(store: Store) -> tuple[str, str]:
    merchant_id = f"mer_{uuid.uuid4().hex[:12]}"
    customer_id = f"cus_{uuid.uuid4().hex[:12]}"
    await store.create_merchant(merchant_id, "routing stats")
    await store.create_customer(
        merchant_id, customer_id, customer_id, "A B", date(1990, 1, 1), "DE"
    )
    return merchant_id, customer_id


async def deposit(
    store: Store,
    merchant_id: str,
    customer_id: str,
    *,
    status: str,
    provider: str | None = None,
    failure_code: str | None = None,
    currency: str = "EUR",
    routing: dict[str, Any] | None = None,
    kind: str = "deposit",
) -> str:
    """A payment written as the API and its saga write it: inserted, then its final status."""
    payment_id = f"dep_{uuid.uuid4().hex}"
    await store.insert_payment(
        merchant_id, payment_id, kind, customer_id, 1_000, currency, None,
        {"payment_method": "pm_ok"}, CARD if routing is None else routing,
    )  # fmt: skip
    if status != "processing":
        await store.update_payment(payment_id, status, provider, failure_code)
    return payment_id


@pytest.mark.asyncio(loop_scope="session")
async def test_authorization_stats_count_approvals_and_declines_per_account(
    db_pool: AsyncConnectionPool,
) -> None:
    store = Store(db_pool)
    merchant_id, customer = await merchant_with_customer(store)
    other_merchant, other_customer = await merchant_with_customer(store)
    declined: dict[str, Any] = {"status": "failed", "failure_code": "provider_declined"}

    # Counted: cards approved once and declined twice, bank approved once.
    await deposit(store, merchant_id, customer, status="succeeded", provider="sandbox-cards")
    await deposit(store, merchant_id, customer, provider="sandbox-cards", **declined)
    await deposit(store, merchant_id, customer, provider="sandbox-cards", **declined)
    await deposit(store, merchant_id, customer, status="succeeded", provider="sandbox-bank")
    # Not counted: no answer about the money, or another currency, family, kind or merchant.
    await deposit(
        store, merchant_id, customer, status="failed", failure_code="provider_unavailable"
    )
    await deposit(
        store, merchant_id, customer, status="failed", provider="sandbox-cards",
        failure_code="provider_rejected",
    )  # fmt: skip
    await deposit(store, merchant_id, customer, status="processing")
    await deposit(store, merchant_id, customer, status="failed", failure_code="risk_declined")
    await deposit(
        store, merchant_id, customer, currency="USD", provider="sandbox-cards", **declined
    )
    await deposit(store, merchant_id, customer, routing=BANK, provider="sandbox-cards", **declined)
    await deposit(
        store, merchant_id, customer, kind="withdrawal", provider="sandbox-cards", **declined
    )
    await deposit(store, other_merchant, other_customer, provider="sandbox-cards", **declined)
    # Out of the window: a decline an hour old.
    old = await deposit(store, merchant_id, customer, provider="sandbox-cards", **declined)
    async with db_pool.connection() as conn:
        await conn.execute(
            "UPDATE payments SET created_at = now() - interval '1 hour' WHERE id = %s", (old,)
        )

    stats = await store.for_merchant(merchant_id).authorization_stats(
        "EUR", MethodFamily.CARD, window_seconds=900
    )

    assert stats == {
        "sandbox-cards": AuthorizationStats(attempts=3, approvals=1),
        "sandbox-bank": AuthorizationStats(attempts=1, approvals=1),
    }
    in_usd = await store.for_merchant(merchant_id).authorization_stats(
        "USD", MethodFamily.CARD, 900
    )
    assert in_usd == {"sandbox-cards": AuthorizationStats(attempts=1, approvals=0)}
    since_long = await store.for_merchant(merchant_id).authorization_stats(
        "EUR", MethodFamily.CARD, window_seconds=7_200
    )
    assert since_long["sandbox-cards"] == AuthorizationStats(attempts=4, approvals=1)


@pytest.mark.asyncio(loop_scope="session")
async def test_payment_keeps_its_routing_record(db_pool: AsyncConnectionPool) -> None:
    store = Store(db_pool)
    merchant_id, customer = await merchant_with_customer(store)
    routing: dict[str, Any] = {
        "reason": "success_rate",
        "method": "card",
        "candidates": [
            {"id": "sandbox-bank", "priority": 1},
            {"id": "sandbox-cards", "priority": 0},
        ],
        "rates": {"sandbox-cards": 0.0, "sandbox-bank": 1.0},
    }
    payment_id = await deposit(store, merchant_id, customer, status="processing", routing=routing)
    row = await store.for_merchant(merchant_id).get_payment(payment_id)
    assert row is not None and row.routing == routing
