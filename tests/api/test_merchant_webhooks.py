"""Merchant webhooks: the merchant's events POSTed from the feed, signed, in sequence order, and
retried until 2xx; to the merchant's own endpoint only, never an installation-wide one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from domain.merchants import DEV_MERCHANT_ID
from providers.webhooks import WebhookSignatureInvalid, sign
from tests.events.api_merchants import WEBHOOK_SECRET, merchant_with_endpoint, read_feed
from tests.events.receiver import MerchantEndpoint, Received
from tests.psp_fixtures import WebhookReceiver
from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def endpoint() -> Iterator[MerchantEndpoint]:
    receiver = MerchantEndpoint()
    receiver.start()
    yield receiver
    receiver.stop()


async def eventually(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)
    return result


async def deposit(api: httpx.AsyncClient) -> dict[str, Any]:
    """A succeeded deposit of a new customer."""
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 700,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    payment = await wait_terminal(api, response.json()["id"])
    assert payment["status"] == "succeeded"
    return payment


async def test_merchants_events_are_delivered_signed_in_sequence_order_and_retried_until_2xx(
    stack: Stack, endpoint: MerchantEndpoint
) -> None:
    endpoint.answer(1, 500, 503)  # the merchant is down for its first event's first two tries
    async with merchant_with_endpoint(stack, endpoint.url) as merchant:
        await deposit(merchant.payments)
        feed = await read_feed(merchant.payments)

        def everything_taken() -> bool:
            taken = {r.sequence for r in endpoint.received() if r.answered == 200}
            return taken >= {e["sequence"] for e in feed}

        await eventually(everything_taken)

    received = endpoint.received()
    assert [(r.sequence, r.answered) for r in received[:3]] == [(1, 500), (1, 503), (1, 200)]
    taken = [r for r in received if r.answered == 200][: len(feed)]
    assert [r.sequence for r in taken] == [e["sequence"] for e in feed]  # in order, once each
    assert [r.event for r in taken] == feed  # the feed's events: same id, sequence and body
    assert [e["type"] for e in feed][:1] == ["payment.created"]
    assert "payment.succeeded" in [e["type"] for e in feed]
    for request in received:
        request.verify(WEBHOOK_SECRET)
        assert request.event_id == request.event["id"]


async def without_own_endpoint(stack: Stack, merchant_id: str) -> None:
    """The merchant as before it set an endpoint of its own (the API sets, never clears one, and
    the session's fuzzer may have set one), its pending deliveries due at once."""
    async with await psycopg.AsyncConnection.connect(stack.database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE merchants SET webhook_url = NULL, webhook_secret = NULL WHERE id = %s",
            (merchant_id,),
        )

        async def no_send_in_flight() -> bool:  # none still going to the old endpoint
            cur = await conn.execute(
                "SELECT count(*) FROM webhook_cursors WHERE merchant_id = %s"
                " AND lease_until > now()",
                (merchant_id,),
            )
            return await cur.fetchone() == (0,)

        deadline = time.monotonic() + 90
        while not await no_send_in_flight():
            assert time.monotonic() < deadline, "a delivery of the merchant stays leased"
            await asyncio.sleep(0.1)
        await conn.execute(
            "UPDATE webhook_cursors SET next_attempt_at = now() WHERE merchant_id = %s",
            (merchant_id,),
        )


async def test_development_merchants_events_go_to_no_installation_wide_endpoint(
    stack: Stack, api: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    """The stack still sets the installation-wide URL of earlier releases: a merchant without an
    endpoint of its own, the development one included, has its events in its feed only."""
    await without_own_endpoint(stack, DEV_MERCHANT_ID)
    payment = await deposit(api)
    events = [e for e in await read_feed(api) if e["data"]["object"].get("id") == payment["id"]]
    assert [e["type"] for e in events][:1] == ["payment.created"]
    ids = [e["id"] for e in events]

    async with await psycopg.AsyncConnection.connect(stack.database_url, autocommit=True) as conn:

        async def settled() -> list[str]:
            cur = await conn.execute(
                "SELECT status FROM webhook_delivery_states WHERE event_id = ANY(%s)"
                " AND status <> 'pending'",
                (ids,),
            )
            return [status for (status,) in await cur.fetchall()]

        deadline = time.monotonic() + 60
        while len(statuses := await settled()) < len(ids):
            assert time.monotonic() < deadline, "the deliveries never settled"
            await asyncio.sleep(0.1)

    assert statuses == ["no_endpoint"] * len(ids)
    leaked = [d for d in webhook_receiver.deliveries() if d.provider == "merchant"]
    assert leaked == []


def signatures(header: str) -> list[str]:
    """The `v1` signatures of a `Paysaga-Signature` header, in the order sent."""
    parts = [part.partition("=") for part in header.split(",")]
    return [value for key, _, value in parts if key == "v1"]


def signature_of(secret: str, request: Received) -> str:
    """The `v1` signature the secret makes over this request's body and timestamp."""
    timestamp = int(dict(part.split("=", 1) for part in request.signature.split(","))["t"])
    (value,) = signatures(sign(secret, request.body, timestamp))
    return value


async def deliveries_of(endpoint: MerchantEndpoint, payment: dict[str, Any]) -> list[Received]:
    """The payment's events as the endpoint took them (answered 200), once it has its last."""

    def taken() -> list[Received]:
        found = [
            r
            for r in endpoint.received()
            if r.answered == 200 and r.event["data"]["object"].get("id") == payment["id"]
        ]
        types = [r.event["type"] for r in found]
        return found if "payment.succeeded" in types else []

    found: list[Received] = await eventually(taken)
    return found


async def test_a_rotated_webhook_secret_signs_beside_the_new_one_until_its_grace_ends(
    stack: Stack, endpoint: MerchantEndpoint
) -> None:
    new_secret = "whsec_rotated_secret_9876543210"
    async with merchant_with_endpoint(stack, endpoint.url) as merchant:
        before = datetime.now(UTC)
        rotated = await merchant.ops.patch("/v1/merchant", json={"webhook_secret": new_secret})
        assert rotated.status_code == 200, rotated.text
        grace_ends = datetime.fromisoformat(rotated.json()["previous_webhook_secret_expires_at"])
        assert before + timedelta(hours=23) < grace_ends < before + timedelta(hours=25)
        during_grace = await deliveries_of(endpoint, await deposit(merchant.payments))

        async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
            await conn.execute(  # the grace has run out
                "UPDATE merchants SET previous_webhook_secret_expires_at = now() - interval '1s'"
                " WHERE id = %s",
                (merchant.id,),
            )
        after_grace = await deliveries_of(endpoint, await deposit(merchant.payments))
        shown = await merchant.ops.get("/v1/merchant")

    for request in during_grace:
        assert signatures(request.signature) == [
            signature_of(new_secret, request),
            signature_of(WEBHOOK_SECRET, request),
        ]
        request.verify(new_secret)
        request.verify(WEBHOOK_SECRET)  # a receiver that has not rolled yet still verifies
    for request in after_grace:
        assert signatures(request.signature) == [signature_of(new_secret, request)]
        request.verify(new_secret)
        with pytest.raises(WebhookSignatureInvalid):
            request.verify(WEBHOOK_SECRET)
    assert shown.json()["previous_webhook_secret_expires_at"] is None


async def test_a_webhook_secret_rotated_with_no_grace_stops_signing_at_once(
    stack: Stack, endpoint: MerchantEndpoint
) -> None:
    new_secret = "whsec_compromised_old_0123456789"
    async with merchant_with_endpoint(stack, endpoint.url) as merchant:
        rotated = await merchant.ops.patch(
            "/v1/merchant", json={"webhook_secret": new_secret, "webhook_secret_grace_seconds": 0}
        )
        assert rotated.status_code == 200, rotated.text
        taken = await deliveries_of(endpoint, await deposit(merchant.payments))

    assert rotated.json()["previous_webhook_secret_expires_at"] is None
    for request in taken:
        assert signatures(request.signature) == [signature_of(new_secret, request)]


async def test_a_running_grace_is_ended_or_retimed_without_a_new_secret(
    stack: Stack, endpoint: MerchantEndpoint
) -> None:
    second = {"webhook_secret": "whsec_second_secret_012345678"}
    async with merchant_with_endpoint(stack, endpoint.url) as merchant:
        rotated = await merchant.ops.patch("/v1/merchant", json=second)
        before = datetime.now(UTC)
        retimed = await merchant.ops.patch(
            "/v1/merchant", json={"webhook_secret_grace_seconds": 600}
        )
        ended = await merchant.ops.patch("/v1/merchant", json={"webhook_secret_grace_seconds": 0})
        revived = await merchant.ops.patch(
            "/v1/merchant", json={"webhook_secret_grace_seconds": 600}
        )

    assert rotated.json()["previous_webhook_secret_expires_at"] is not None, rotated.text
    assert retimed.status_code == 200, retimed.text
    grace_ends = datetime.fromisoformat(retimed.json()["previous_webhook_secret_expires_at"])
    assert before + timedelta(minutes=9) < grace_ends < before + timedelta(minutes=11)
    assert ended.status_code == 200 and ended.json()["previous_webhook_secret_expires_at"] is None
    assert revived.json()["previous_webhook_secret_expires_at"] is None  # an ended grace stays so
