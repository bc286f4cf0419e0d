"""Operators read the merchant notifications given up on, and redeliver them."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from paysaga.notifications import DeadLetters
from tests.psp_fixtures import WebhookReceiver
from tests.stack import create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_dead_letter_is_listed_and_redelivered_once(
    api: httpx.AsyncClient,
    ops_api: httpx.AsyncClient,
    db_pool: AsyncConnectionPool,
    webhook_receiver: WebhookReceiver,
) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 700,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    payment = await wait_terminal(api, (await post_payment(api, "/v1/deposits", body)).json()["id"])
    event_id = f"evt_{uuid.uuid4().hex}"
    await DeadLetters(db_pool).record(
        event_id, payment["id"], "succeeded", None, "the merchant answered 410"
    )

    listed = (await ops_api.get("/v1/ops/notifications/dead-letters", params={"limit": 100})).json()
    assert [
        (d["event_id"], d["reason"], d["state"])
        for d in listed["data"]
        if d["event_id"] == event_id
    ] == [(event_id, "the merchant answered 410", "dead")]
    assert (await api.get("/v1/ops/notifications/dead-letters")).status_code == 403

    redelivery = await ops_api.post(f"/v1/ops/notifications/dead-letters/{event_id}/redeliver")
    again = await ops_api.post(f"/v1/ops/notifications/dead-letters/{event_id}/redeliver")

    assert (redelivery.status_code, redelivery.json()["state"]) == (202, "redelivering")
    assert again.status_code in (404, 409)  # being redelivered, or already delivered
    for _ in range(300):  # the redelivery removes it once the merchant took the event
        if await DeadLetters(db_pool).get(event_id) is None:
            break
        await asyncio.sleep(0.1)
    assert await DeadLetters(db_pool).get(event_id) is None
    deliveries = webhook_receiver.deliveries(payment["id"])
    assert [d.answered for d in deliveries if d.event["id"] == event_id] == [200]
    missing = await ops_api.post(f"/v1/ops/notifications/dead-letters/{event_id}/redeliver")
    assert missing.status_code == 404
