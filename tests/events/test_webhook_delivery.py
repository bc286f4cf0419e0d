"""Merchant webhooks from the feed: signed, in sequence order, retried with backoff, dead-lettered
on a final refusal or after the give-up age, redelivered on an operator's word."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from domain.merchants import DEV_MERCHANT_ID
from paysaga.settings import DEV_MERCHANT_WEBHOOK_SECRET
from paysaga.store import Store
from paysaga.store.pages import Window
from tests.events.conftest import (
    MERCHANT_SECRET,
    delivery_states,
    dispatching,
    emit,
    eventually,
    fast_settings,
    new_merchant,
    settled,
)
from tests.events.receiver import MerchantEndpoint

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_events_are_delivered_signed_once_each_in_sequence_order(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    merchant_id = await new_merchant(store, endpoint.url)
    events = await emit(store, merchant_id, 5)

    async with dispatching(store):
        states = await settled(store, merchant_id, 5)

    assert [(s["status"], s["attempts"]) for s in states] == [("delivered", 1)] * 5
    received = endpoint.received()
    assert [r.sequence for r in received] == [1, 2, 3, 4, 5]
    for request, event in zip(received, events, strict=True):
        request.verify(MERCHANT_SECRET)
        assert request.event_id == event.id
        assert request.event == event.payload  # the feed's event, byte for byte its JSON
        assert request.event["sequence"] == request.sequence


async def test_failed_delivery_is_retried_until_taken_and_later_events_wait_for_it(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    merchant_id = await new_merchant(store, endpoint.url)
    await emit(store, merchant_id, 3)
    endpoint.answer(1, 500, 503, 500)

    async with dispatching(store):
        states = await settled(store, merchant_id, 3)

    assert [(s["status"], s["attempts"]) for s in states] == [
        ("delivered", 4),
        ("delivered", 1),
        ("delivered", 1),
    ]
    received = endpoint.received()
    assert [(r.sequence, r.answered) for r in received] == [
        (1, 500),
        (1, 503),
        (1, 500),
        (1, 200),
        (2, 200),
        (3, 200),
    ]
    assert len({r.event_id for r in received[:4]}) == 1


@pytest.mark.parametrize("status", [408, 429])
async def test_timeout_and_rate_limit_answers_are_retried(
    store: Store, endpoint: MerchantEndpoint, status: int
) -> None:
    merchant_id = await new_merchant(store, endpoint.url)
    await emit(store, merchant_id, 1)
    endpoint.answer(1, status)

    async with dispatching(store):
        states = await settled(store, merchant_id, 1)

    assert (states[0]["status"], states[0]["attempts"]) == ("delivered", 2)
    assert [r.answered for r in endpoint.received()] == [status, 200]


async def test_final_refusal_is_dead_lettered_at_once_and_the_next_event_goes_on(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    merchant_id = await new_merchant(store, endpoint.url)
    events = await emit(store, merchant_id, 3)
    endpoint.answer(2, 400)

    async with dispatching(store):
        states = await settled(store, merchant_id, 3)

    assert [s["status"] for s in states] == ["delivered", "dead", "delivered"]
    assert [(r.sequence, r.answered) for r in endpoint.received()] == [(1, 200), (2, 400), (3, 200)]
    dead, _ = await store.for_merchant(merchant_id).list_dead_deliveries(Window[str](10))
    assert [(d.event_id, d.attempts, d.last_error) for d in dead] == [(events[1].id, 1, "http_400")]


async def test_delivery_not_taken_within_the_give_up_age_is_dead_lettered_and_logged(
    store: Store, endpoint: MerchantEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    merchant_id = await new_merchant(store, endpoint.url)
    [old, recent] = await emit(store, merchant_id, 2)
    async with store.pool.connection() as conn:  # the first event happened three days ago
        await conn.execute(
            "UPDATE events SET created_at = now() - interval '3 days 1 minute' WHERE id = %s",
            (old.id,),
        )
    endpoint.answer(1, 500)

    with caplog.at_level(logging.WARNING, logger="paysaga.webhooks"):
        async with dispatching(store):
            states = await settled(store, merchant_id, 2)

    assert [s["status"] for s in states] == ["dead", "delivered"]
    assert states[0]["last_error"] == "not taken within 3 days (last: http_500)"
    assert [(r.sequence, r.answered) for r in endpoint.received()] == [(1, 500), (2, 200)]
    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 1 and old.id in given_up[0] and merchant_id in given_up[0]
    assert recent.id not in given_up[0]


async def test_dead_letter_is_sent_again_after_redeliver(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    merchant_id = await new_merchant(store, endpoint.url)
    [event] = await emit(store, merchant_id, 1)
    endpoint.answer(1, 410)
    books = store.for_merchant(merchant_id)

    async with dispatching(store):
        await settled(store, merchant_id, 1)
        redelivered = await books.redeliver(event.id)
        assert redelivered is not None and redelivered.status == "pending"
        assert await books.redeliver(event.id) is None  # pending again, not dead
        states = await eventually(lambda: settled_as(store, merchant_id, "delivered"), timeout=15)

    assert (states[0]["attempts"], states[0]["last_error"]) == (1, None)
    received = endpoint.received()
    assert [(r.event_id, r.answered) for r in received] == [(event.id, 410), (event.id, 200)]
    assert received[0].body == received[1].body
    dead, _ = await books.list_dead_deliveries(Window[str](10))
    assert dead == []


async def settled_as(store: Store, merchant_id: str, status: str) -> list[dict[str, object]] | None:
    states = await delivery_states(store, merchant_id)
    return states if all(s["status"] == status for s in states) else None


async def test_unusable_url_is_retried_until_the_merchant_corrects_it(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    merchant_id = await new_merchant(store, endpoint.url + "/\x14")  # httpx refuses it
    await emit(store, merchant_id, 2)

    async with dispatching(store):

        async def tried() -> list[dict[str, Any]] | None:
            states = await delivery_states(store, merchant_id)
            return states if states[0]["attempts"] >= 1 else None

        [first, second] = await eventually(tried)
        await store.set_merchant_webhook(merchant_id, endpoint.url, MERCHANT_SECRET)
        states = await settled(store, merchant_id, 2)

    assert (first["status"], second["attempts"]) == ("pending", 0)
    assert first["last_error"] == "invalid_url"
    assert [s["status"] for s in states] == ["delivered", "delivered"]
    assert endpoint.sequences() == [1, 2]


async def test_merchant_without_endpoint_gets_no_endpoint_and_nothing_is_sent(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    no_url = await new_merchant(store, url=None, secret=None)
    no_secret = await new_merchant(store, url=endpoint.url, secret=None)
    await emit(store, no_url, 2)
    await emit(store, no_secret, 1)

    async with dispatching(store, fast_settings()):
        without_url = await settled(store, no_url, 2)
        without_secret = await settled(store, no_secret, 1)

    assert [s["status"] for s in without_url + without_secret] == ["no_endpoint"] * 3
    assert without_url[0]["last_error"] == "the merchant has no webhook_url"
    assert "no webhook_secret" in without_secret[0]["last_error"]
    assert endpoint.received() == []


async def test_development_merchant_without_its_own_secret_signs_with_the_installations(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    """Its own endpoint, as every merchant's: there is no installation-wide one."""
    before = len(await delivery_states(store, DEV_MERCHANT_ID))
    await store.set_merchant_webhook(DEV_MERCHANT_ID, endpoint.url, None)
    try:
        [event] = await emit(store, DEV_MERCHANT_ID, 1)
        async with dispatching(store, fast_settings()):
            states = await settled(store, DEV_MERCHANT_ID, before + 1)
    finally:
        await store.set_merchant_webhook(DEV_MERCHANT_ID, None, None)

    assert states[-1]["status"] == "delivered"
    [request] = endpoint.received()
    assert request.event_id == event.id
    request.verify(DEV_MERCHANT_WEBHOOK_SECRET)


async def test_slow_endpoint_holds_up_only_its_own_merchant(store: Store) -> None:
    slow, quick = MerchantEndpoint(), MerchantEndpoint()
    for each in (slow, quick):
        each.start()
    try:
        slow_id = await new_merchant(store, slow.url)
        quick_id = await new_merchant(store, quick.url)
        await emit(store, slow_id, 2)
        await emit(store, quick_id, 5)
        slow.hold(1)

        async with dispatching(store):
            await eventually(slow.holding.is_set)
            quick_states = await settled(store, quick_id, 5)
            assert [r.sequence for r in slow.received()] == [1]  # still waiting for its answer
            slow.release()
            slow_states = await settled(store, slow_id, 2)
    finally:
        slow.stop()
        quick.stop()

    assert [s["status"] for s in quick_states + slow_states] == ["delivered"] * 7
    assert quick.sequences() == [1, 2, 3, 4, 5]
    assert slow.sequences() == [1, 2]


async def test_dispatchers_side_by_side_deliver_each_event_once_in_order(store: Store) -> None:
    endpoints = [MerchantEndpoint(delay_seconds=0.01) for _ in range(3)]
    for each in endpoints:
        each.start()
    try:
        merchants = [await new_merchant(store, each.url) for each in endpoints]
        for merchant_id in merchants:
            await emit(store, merchant_id, 20)
        settings = fast_settings(webhook_delivery_batch_size=4)

        async with dispatching(store, settings), dispatching(store, settings):
            for merchant_id in merchants:
                await settled(store, merchant_id, 20)
    finally:
        for each in endpoints:
            each.stop()

    for each in endpoints:
        assert each.sequences() == list(range(1, 21))  # no duplicate, no overtaking
        assert {json.loads(r.body)["sequence"] for r in each.received()} == set(range(1, 21))


async def test_dispatcher_stops_cleanly_and_gives_back_what_it_did_not_send(
    store: Store, endpoint: MerchantEndpoint
) -> None:
    merchant_id = await new_merchant(store, endpoint.url)
    await emit(store, merchant_id, 3)
    endpoint.hold(1)

    async with dispatching(store):
        await eventually(endpoint.holding.is_set)
        asyncio.get_running_loop().call_later(0.2, endpoint.release)
    # Stopped: the send in flight finished, the two behind it were given back unleased.

    states = await delivery_states(store, merchant_id)
    assert [(s["status"], s["lease_until"]) for s in states] == [
        ("delivered", None),
        ("pending", None),
        ("pending", None),
    ]
    assert endpoint.sequences() == [1]


async def test_more_slow_endpoints_than_connections_of_a_pool_hold_up_no_other_merchant(
    store: Store,
) -> None:
    """Twelve merchants' endpoints keep their requests waiting; a thirteenth merchant's events are
    taken meanwhile, each at its first attempt (no send waits for another's connection)."""
    slow, quick = MerchantEndpoint(), MerchantEndpoint()
    for each in (slow, quick):
        each.start()
    slow.hold(1)
    try:
        slow_ids = [await new_merchant(store, slow.url) for _ in range(12)]
        quick_id = await new_merchant(store, quick.url)
        for merchant_id in slow_ids:
            await emit(store, merchant_id, 1)
        await emit(store, quick_id, 3)

        async with dispatching(
            store,
            fast_settings(webhook_delivery_timeout_seconds=30, webhook_delivery_lease_seconds=60),
        ):
            await eventually(lambda: len(slow.received()) == 12)
            quick_states = await settled(store, quick_id, 3)
            slow.release()
            for merchant_id in slow_ids:
                await settled(store, merchant_id, 1)
    finally:
        slow.stop()
        quick.stop()

    assert [(s["status"], s["attempts"]) for s in quick_states] == [("delivered", 1)] * 3
