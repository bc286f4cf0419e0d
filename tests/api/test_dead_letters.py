"""Operators read the merchant webhooks given up on, and redeliver them from the feed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.events.api_merchants import WEBHOOK_SECRET, merchant_with_endpoint, read_feed
from tests.events.receiver import MerchantEndpoint
from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def endpoint() -> Iterator[MerchantEndpoint]:
    receiver = MerchantEndpoint()
    receiver.start()
    yield receiver
    receiver.stop()


async def dead_letters(ops: httpx.AsyncClient) -> list[dict[str, Any]]:
    listed = await ops.get("/v1/ops/notifications/dead-letters", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


async def eventually_true(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)
    return result


async def test_refused_event_is_dead_lettered_listed_and_redelivered_once(
    stack: Stack, ops_api: httpx.AsyncClient, endpoint: MerchantEndpoint
) -> None:
    endpoint.answer(1, 410)  # the merchant refuses its first event outright
    async with merchant_with_endpoint(stack, endpoint.url) as merchant:
        customer = await create_customer(merchant.payments)
        body = {
            "customer_id": customer["id"],
            "amount": 700,
            "currency": "EUR",
            "payment_method": "pm_ok",
        }
        response = await post_payment(merchant.payments, "/v1/deposits", body)
        await wait_terminal(merchant.payments, response.json()["id"])
        [created, *later] = await read_feed(merchant.payments)
        event_id = created["id"]

        [dead] = await eventually_true(lambda: dead_letters(merchant.ops))
        forbidden = await merchant.payments.get("/v1/ops/notifications/dead-letters")
        someone_else = await ops_api.post(
            f"/v1/ops/notifications/dead-letters/{event_id}/redeliver"
        )

        redelivery = await merchant.ops.post(
            f"/v1/ops/notifications/dead-letters/{event_id}/redeliver"
        )
        again = await merchant.ops.post(f"/v1/ops/notifications/dead-letters/{event_id}/redeliver")

        async def redelivered() -> bool:
            # The refused event taken at last, and the ones after it (the lane went on).
            taken = {r.sequence for r in endpoint.received() if r.answered == 200}
            return taken >= {1, *(e["sequence"] for e in later)}

        await eventually_true(redelivered)
        after = await merchant.ops.post(f"/v1/ops/notifications/dead-letters/{event_id}/redeliver")
        missing = await merchant.ops.post("/v1/ops/notifications/dead-letters/evt_nobody/redeliver")
        remaining = await dead_letters(merchant.ops)
        audit = (await merchant.ops.get("/v1/ops/audit-log", params={"limit": 100})).json()["data"]

    assert (dead["event_id"], dead["sequence"], dead["type"]) == (event_id, 1, "payment.created")
    assert (dead["status"], dead["attempts"], dead["reason"]) == (
        "dead",
        1,
        "http_410",
    )
    assert forbidden.status_code == 403  # ops scope only
    assert someone_else.status_code == 404  # another merchant's event is nobody's
    assert (redelivery.status_code, redelivery.json()["status"]) == (202, "pending")
    assert redelivery.json()["redeliveries"] == 1
    assert again.status_code == 409 and again.json()["code"] == "dead_letter_redelivering"
    assert after.status_code == 409  # delivered now, not dead
    assert missing.status_code == 404
    assert remaining == []
    first = [r for r in endpoint.received() if r.sequence == 1]
    assert [(r.event_id, r.answered) for r in first] == [(event_id, 410), (event_id, 200)]
    for request in first:
        request.verify(WEBHOOK_SECRET)
    assert [a["target"] for a in audit if a["action"] == "notification.redeliver"] == [event_id]
