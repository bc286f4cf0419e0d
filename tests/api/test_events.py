"""The event feed through HTTP: concurrent payments of one merchant numbered without gap or
repeat, read back in order by a consumer paging with `after`; nothing of it shown to another
merchant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from activities.retention import PurgeInput, RetentionActivities
from paysaga.database import open_pool
from paysaga.settings import DEV_MERCHANT_2_KEY, DEV_PLATFORM_KEY
from paysaga.store import Store
from tests.events.api_merchants import client, read_feed
from tests.events.conftest import emit
from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEPOSITS = 50


@pytest_asyncio.fixture(loop_scope="session")
async def merchant_2(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack, DEV_MERCHANT_2_KEY) as other:
        yield other


async def test_concurrent_deposits_are_numbered_without_gap_and_read_back_in_order(
    api: httpx.AsyncClient, merchant_2: httpx.AsyncClient
) -> None:
    earlier = await read_feed(api)
    cursor = earlier[-1]["sequence"] if earlier else 0  # the consumer has processed these
    # Ten customers, so that no customer's velocity limit declines a deposit.
    customers = [await create_customer(api) for _ in range(10)]
    bodies = [
        {
            "customer_id": customers[n % len(customers)]["id"],
            "amount": 100 + n,
            "currency": "EUR",
            "payment_method": "pm_ok",
        }
        for n in range(DEPOSITS)
    ]

    answers = await asyncio.gather(*(post_payment(api, "/v1/deposits", b) for b in bodies))
    assert [a.status_code for a in answers] == [202] * DEPOSITS
    ids = {a.json()["id"] for a in answers}
    await asyncio.gather(*(wait_terminal(api, payment_id) for payment_id in ids))

    feed = await read_feed(api, after=cursor, limit=7)  # small pages: many `after` hops
    sequences = [e["sequence"] for e in feed]
    assert sequences == list(range(cursor + 1, cursor + 1 + len(feed)))  # no gap, no repeat
    created = [
        e for e in feed if e["type"] == "payment.created" and e["data"]["object"]["id"] in ids
    ]
    assert sorted(e["data"]["object"]["id"] for e in created) == sorted(ids)  # once each
    first_seen: dict[str | None, str] = {}
    for event in feed:
        first_seen.setdefault(event["data"]["object"].get("id"), event["type"])
    assert {first_seen[payment_id] for payment_id in ids} == {"payment.created"}
    by_type = await read_feed(api, after=cursor, limit=9, type="payment.created")
    assert [e for e in by_type if e["data"]["object"]["id"] in ids] == created

    theirs = await read_feed(merchant_2)
    assert not {e["id"] for e in theirs} & {e["id"] for e in feed}
    assert not {e["data"]["object"].get("id") for e in theirs} & ids
    assert (await merchant_2.get(f"/v1/events/{created[0]['id']}")).status_code == 404


async def test_a_cursor_whose_next_events_were_purged_answers_410_instead_of_skipping_them(
    stack: Stack,
) -> None:
    async with client(stack, DEV_PLATFORM_KEY) as platform:
        merchant = await platform.post("/v1/merchants", json={"name": "Brand R"})
        merchant_id = merchant.json()["id"]
        key = await platform.post(f"/v1/merchants/{merchant_id}/api-keys", json={"scopes": ["ops"]})
    async with await open_pool(stack.database_url, 1, 2) as pool:
        store = Store(pool)
        first, second, third = await emit(store, merchant_id, 3)
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE events SET created_at = now() - interval '31 days' WHERE id = ANY(%s)",
                ([first.id, second.id],),
            )
        purged = await RetentionActivities(pool, 30).purge_idempotency(PurgeInput(24, 45))
    assert purged.events >= 2

    async with client(stack, key.json()["secret"]) as merchant_client:
        from_start = await merchant_client.get("/v1/events", params={"after": 0})
        one_purged = await merchant_client.get("/v1/events", params={"after": 1})
        by_type = await merchant_client.get(
            "/v1/events", params={"after": 1, "type": "payment.created"}
        )
        kept = await merchant_client.get("/v1/events", params={"after": 2})
        oldest_kept = await merchant_client.get("/v1/events")

    for expired in (from_start, one_purged, by_type):
        assert expired.status_code == 410, expired.text
        assert expired.headers["content-type"].startswith("application/problem+json")
        assert expired.json()["code"] == "cursor_expired"
    assert [e["id"] for e in kept.json()["data"]] == [third.id]
    assert [e["id"] for e in oldest_kept.json()["data"]] == [third.id]  # no cursor: what is kept
