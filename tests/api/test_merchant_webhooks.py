"""Merchant webhooks: each payment status change is POSTed, signed, and retried until 2xx."""

from __future__ import annotations

import time

import httpx
import pytest

from paysaga.settings import Settings
from providers.webhooks import verify
from tests.psp_fixtures import WebhookReceiver
from tests.stack import Stack, funded_customer, post_payment, wait_status

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_status_change_is_delivered_signed_and_retried_until_2xx(
    api: httpx.AsyncClient, stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    customer = await funded_customer(api, 500_000)
    body = {
        "customer_id": customer["id"],
        "amount": 500_000,
        "currency": "EUR",
        "destination": "pm_ok",
    }
    payment = (await post_payment(api, "/v1/withdrawals", body)).json()
    await wait_status(api, payment["id"], {"requires_review"})
    webhook_receiver.wait_for(payment["id"], count=1)
    webhook_receiver.fail_reference(payment["id"], 2)  # the merchant is down for two deliveries

    assert (await api.post(f"/v1/payments/{payment['id']}/cancel")).status_code == 200
    webhook_receiver.wait_for(payment["id"], count=2, timeout=30)

    deliveries = webhook_receiver.deliveries(payment["id"])
    by_type = [(d.event["type"], d.answered) for d in deliveries]
    assert by_type == [
        ("payment.requires_review", 200),
        ("payment.canceled", 500),
        ("payment.canceled", 500),
        ("payment.canceled", 200),
    ]
    canceled = deliveries[1:]
    assert {d.event["id"] for d in canceled} == {f"evt_{payment['id']}_canceled"}
    assert canceled[-1].event["data"]["payment"]["status"] == "canceled"
    secret = Settings().merchant_webhook_secret
    for delivery in deliveries:
        verify(
            secret, delivery.signature, delivery.body, now=int(time.time()), tolerance_seconds=300
        )
