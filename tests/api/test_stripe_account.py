"""A merchant's own Stripe account end to end (issue 23, items 4 and 5): the stack's worker
charges through the Stripe adapter at a local server that follows Stripe's API, Stripe's signed
webhooks arrive at the account's own path and are verified with its own secret, and a dispute
Stripe reports (naming its PaymentIntent, not our payment) reaches the deposit's dispute."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.api.test_provider_accounts import new_merchant
from tests.providers.stripe_fixtures import SECRET_KEY, StripeServerProcess
from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def stripe_intent_of(server: StripeServerProcess, payment_id: str) -> dict[str, Any]:
    """The PaymentIntent the adapter made for a payment, as Stripe's list shows it."""
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as stripe:
        listed = (await stripe.get("/v1/payment_intents", params={"limit": 100})).json()["data"]
    (intent,) = [i for i in listed if i["metadata"].get("paysaga_reference") == payment_id]
    return intent


async def test_a_merchants_stripe_account_takes_a_deposit_and_reports_its_dispute(
    stack: Stack, tmp_path: Path
) -> None:
    server = StripeServerProcess(tmp_path / "stripe.log", "")
    webhook_secret = f"whsec_{uuid.uuid4().hex}"
    _, books = await new_merchant(stack)
    async with books:
        created = await books.post(
            "/v1/providers",
            json={
                "adapter": "stripe",
                "name": "stripe-eu",
                "credentials": {"secret_key": SECRET_KEY},
                "webhook_secret": webhook_secret,
                "methods": ["card"],
                "currencies": ["EUR"],
                "priority": 1,
                "endpoint": server.url,
            },
        )
        assert created.status_code == 201, created.text
        account = created.json()
        # Stripe's dashboard: the endpoint is the account's own path, signed with its secret.
        server.deliver_to(f"{stack.api_url}/v1/webhooks/providers/{account['id']}", webhook_secret)
        server.start()
        try:
            customer = await create_customer(books)
            body = {
                "customer_id": customer["id"],
                "amount": 2_500,
                "currency": "EUR",
                "payment_method": "pm_card_visa",
            }
            started = await post_payment(books, "/v1/deposits", body)
            assert started.status_code == 202, started.text
            paid = await wait_terminal(books, started.json()["id"])
            intent = await stripe_intent_of(server, paid["id"])
            server.control("disputes", payment_intent=intent["id"], amount="1000")
            dispute = await dispute_of(books, paid["id"])
            balance = (await books.get(f"/v1/customers/{customer['id']}/balances")).json()
        finally:
            server.stop()

    assert (account["adapter"], account["methods"], account["currencies"]) == (
        "stripe",
        ["card"],
        ["EUR"],
    )
    assert (paid["status"], paid["provider"]) == ("succeeded", account["id"])
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 2_500, "eur")
    assert (dispute["amount"], dispute["status"]) == (1_000, "needs_response")
    # The disputed 10.00 is withdrawn from the 25.00 the deposit credited.
    (eur,) = [b for b in balance["data"] if b["currency"] == "EUR"]
    assert eur["posted"] == 1_500
    # Stripe's own webhooks, verified with the account's secret, reached the payment.
    async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM provider_webhook_events WHERE provider = %s AND payment_id = %s",
            (account["id"], paid["id"]),
        )
        row = await cur.fetchone()
    assert row is not None and row[0] >= 2  # the payment's event and the dispute's


async def dispute_of(books: httpx.AsyncClient, payment_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = (await books.get("/v1/disputes", params={"payment_id": payment_id})).json()
        if found["data"]:
            dispute: dict[str, Any] = found["data"][0]
            return dispute
        await asyncio.sleep(0.1)
    raise AssertionError(f"no dispute of {payment_id}")
