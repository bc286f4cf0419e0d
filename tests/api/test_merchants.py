"""Two merchants on one installation, through the HTTP API: each sees and moves only its own.

The sweep over the OpenAPI document sends merchant B to every route that names an object of
merchant A; a route added later without an id below fails the sweep until it is covered.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from paysaga.settings import DEV_MERCHANT_2_KEY, DEV_PLATFORM_KEY
from tests.stack import (
    Stack,
    create_customer,
    funded_customer,
    post_payment,
    wait_status,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Routes whose path parameter is not a merchant's object: the platform's and the providers'.
NOT_A_MERCHANT_OBJECT = {
    "/v1/merchants/{merchant_id}/api-keys",
    "/v1/merchants/{merchant_id}/api-keys/{key_id}",
    "/v1/webhooks/providers/{provider}",
}
# A valid body for each action that needs one, so that B reaches the lookup, not validation.
ACTION_BODIES: dict[str, dict[str, Any]] = {
    "/v1/payments/{payment_id}/review": {"decision": "approve", "reason": "looks fine"},
    "/v1/payments/{payment_id}/resolve": {"outcome": "failed", "reason": "checked"},
    "/v1/customers/{customer_id}/bonuses": {
        "amount": 100,
        "currency": "EUR",
        "wagering_multiplier": 1,
        "expires_in_seconds": 3600,
    },
    "/v1/bonuses/{bonus_id}/forfeit": {"reason": "checked"},
    "/v1/disputes/{dispute_id}/evidence": {"text": "receipt"},
    "/v1/providers/{account_id}": {"enabled": True, "priority": 1},
    "/v1/customers/{customer_id}/block": {"reason": "checked"},
    "/v1/customers/{customer_id}/unblock": {"reason": "checked"},
    "/v1/payments/{payment_id}/refunds": {"amount": 100, "reason": "checked"},
    "/v1/refunds/{refund_id}/resolve": {"outcome": "failed", "reason": "checked"},
    "/v1/customers/{customer_id}/limits": {"currency": "EUR", "deposit": {"day": 1}},
    "/v1/customers/{customer_id}/self-exclusion": {"days": 1},
}
# A valid query for each read that needs one.
ACTION_QUERIES: dict[str, dict[str, str]] = {
    "/v1/customers/{customer_id}/wallet": {"currency": "EUR"},
    "/v1/customers/{customer_id}/limits": {"currency": "EUR"},
}


def client(stack: Stack, key: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30)


@pytest_asyncio.fixture(loop_scope="session")
async def merchant_b(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The second dev merchant's client (payments + ops)."""
    async with client(stack, DEV_MERCHANT_2_KEY) as b:
        yield b


@pytest_asyncio.fixture(loop_scope="session")
async def platform(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack, DEV_PLATFORM_KEY) as p:
        yield p


async def objects_of_a(api: httpx.AsyncClient, stack: Stack) -> dict[str, str]:
    """Merchant A's objects by the path parameter that names them: a withdrawal waiting for
    review (so that every action would still be allowed to A), its customer, a quote, an event,
    a refund of its deposit, an API key."""
    customer = await funded_customer(api, 800_000, "EUR")
    (deposit,) = (await api.get("/v1/payments", params={"customer_id": customer["id"]})).json()[
        "data"
    ]
    refund = await post_payment(api, f"/v1/payments/{deposit['id']}/refunds", {"amount": 100})
    assert refund.status_code == 202, refund.text
    withdrawal = await post_payment(
        api,
        "/v1/withdrawals",
        {
            "customer_id": customer["id"],
            "amount": 600_000,
            "currency": "EUR",
            "destination": "pm_ok",
        },
    )
    assert withdrawal.status_code == 202, withdrawal.text
    await wait_status(api, withdrawal.json()["id"], {"requires_review"})
    quote = await api.post(
        "/v1/fx/quotes",
        json={
            "customer_id": customer["id"],
            "source_currency": "EUR",
            "target_currency": "USD",
            "source_amount": 10_000,
        },
    )
    assert quote.status_code == 201, quote.text
    events = await api.get("/v1/events", params={"type": "payment.created", "limit": 1})
    assert events.status_code == 200, events.text
    bonus = await post_payment(
        api,
        f"/v1/customers/{customer['id']}/bonuses",
        {"amount": 100, "currency": "EUR", "wagering_multiplier": 1, "expires_in_seconds": 3600},
    )
    assert bonus.status_code == 201, bonus.text
    dispute_id = await open_dispute_of_a(api, stack)
    async with client(stack, DEV_PLATFORM_KEY) as platform:
        key = await platform.post("/v1/merchants/mer_dev/api-keys", json={"scopes": ["payments"]})
    assert key.status_code == 201, key.text
    account = await api.post(
        "/v1/providers",
        json={
            "adapter": "sandbox",
            "name": f"a-{uuid.uuid4().hex[:12]}",
            "credentials": {},
            "webhook_secret": "whsec_0123456789abcdef",
            "priority": 1000,
        },
    )
    assert account.status_code == 201, account.text
    # Disabled at once: A's deposits in the other tests keep going to the sandbox's accounts.
    disabled = await api.patch(f"/v1/providers/{account.json()['id']}", json={"enabled": False})
    assert disabled.status_code == 200, disabled.text
    return {
        "customer_id": customer["id"],
        "payment_id": withdrawal.json()["id"],
        "quote_id": quote.json()["id"],
        "event_id": events.json()["data"][0]["id"],
        "bonus_id": bonus.json()["id"],
        "refund_id": refund.json()["id"],
        "dispute_id": dispute_id,
        "key_id": key.json()["id"],
        "account_id": account.json()["id"],
    }


async def open_dispute_of_a(api: httpx.AsyncClient, stack: Stack) -> str:
    """A dispute of a deposit of merchant A, open (it still takes A's evidence)."""
    customer = await funded_customer(api, 1_000, "EUR")
    listed = await api.get("/v1/payments", params={"customer_id": customer["id"]})
    (deposit,) = listed.json()["data"]
    async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
        planted = await psp.post(
            f"/{deposit['provider']}/_sandbox/disputes",
            json={"reference": deposit["id"], "amount": 500, "outcome": "lost"},
        )
    assert planted.status_code == 201, planted.text
    for _ in range(600):
        found = (await api.get("/v1/disputes", params={"payment_id": deposit["id"]})).json()
        if found["data"]:
            return str(found["data"][0]["id"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no dispute of {deposit['id']}")


def same_shape(theirs: httpx.Response, missing: httpx.Response, their_id: str, fake: str) -> None:
    """Another merchant's object answers exactly as a missing one, but for the id itself."""
    assert theirs.status_code == missing.status_code == 404, (theirs.text, missing.text)
    assert theirs.headers["content-type"] == missing.headers["content-type"]
    assert theirs.text.replace(their_id, "<id>") == missing.text.replace(fake, "<id>")


async def test_every_route_answers_404_for_another_merchants_object(
    stack: Stack, api: httpx.AsyncClient, ops_api: httpx.AsyncClient, merchant_b: httpx.AsyncClient
) -> None:
    ids = await objects_of_a(ops_api, stack)
    paths = (await api.get("/openapi.json")).json()["paths"]
    swept = []
    for template, operations in paths.items():
        names = re.findall(r"{(\w+)}", template)
        if not names or template in NOT_A_MERCHANT_OBJECT:
            continue
        assert all(n in ids for n in names), f"add an object of merchant A for {template}"
        for method in operations:
            theirs = template.format(**ids)
            fakes = {n: ids[n][: ids[n].index("_") + 1] + uuid.uuid4().hex[:24] for n in names}
            missing = template.format(**fakes)
            kwargs: dict[str, Any] = {"headers": {"Idempotency-Key": str(uuid.uuid4())}}
            if template in ACTION_BODIES:
                kwargs["json"] = ACTION_BODIES[template]
            if template in ACTION_QUERIES:
                kwargs["params"] = ACTION_QUERIES[template]
            answer = await merchant_b.request(method.upper(), theirs, **kwargs)
            kwargs["headers"] = {"Idempotency-Key": str(uuid.uuid4())}
            missing_answer = await merchant_b.request(method.upper(), missing, **kwargs)
            (name,) = names
            same_shape(answer, missing_answer, ids[name], fakes[name])
            swept.append(f"{method.upper()} {template}")

    assert {
        "POST /v1/payments/{payment_id}/cancel",
        "GET /v1/events/{event_id}",
        "GET /v1/bonuses/{bonus_id}",
        "POST /v1/customers/{customer_id}/block",
    } <= set(swept)
    # None of it touched A's payment: still waiting for A's reviewer, who can still approve it.
    payment = (await api.get(f"/v1/payments/{ids['payment_id']}")).json()
    assert payment["status"] == "requires_review"
    approved = await ops_api.post(
        f"/v1/payments/{ids['payment_id']}/review", json={"decision": "reject", "reason": "test"}
    )
    assert approved.status_code == 200, approved.text


async def test_lists_and_the_event_feed_never_show_another_merchants_objects(
    api: httpx.AsyncClient, merchant_b: httpx.AsyncClient
) -> None:
    customer = await funded_customer(api, 5_000, "EUR")
    a_ids = {customer["id"]}
    async for event in all_events(api):
        if not installation_provider_event(event):  # the installation's providers are everyone's
            a_ids.add(object_id(event))

    b_payments = (await merchant_b.get("/v1/payments", params={"limit": 100})).json()["data"]
    filtered = await merchant_b.get("/v1/payments", params={"customer_id": customer["id"]})
    b_event_objects = {object_id(e) async for e in all_events(merchant_b)}
    b_audit = await merchant_b.get("/v1/ops/audit-log", params={"limit": 100})

    assert not a_ids & {p["id"] for p in b_payments}
    assert filtered.status_code == 200 and filtered.json()["data"] == []
    assert not a_ids & b_event_objects
    assert b_audit.status_code == 200
    assert not a_ids & {a["target"] for a in b_audit.json()["data"]}


async def test_wallet_calls_of_another_merchants_customer_are_never_listed(
    api: httpx.AsyncClient, merchant_b: httpx.AsyncClient
) -> None:
    customer = await funded_customer(api, 5_000, "EUR")
    bet_id = f"bet-{uuid.uuid4().hex[:12]}"
    bet = {
        "customer_id": customer["id"],
        "game_provider": "isolation-slots",
        "transaction_id": bet_id,
        "game_id": "slots",
        "round_id": f"round-{bet_id}",
        "amount": 100,
        "currency": "EUR",
    }
    assert (await api.post("/v1/wallet/bets", json=bet)).status_code == 200
    params = {"customer_id": customer["id"]}

    own = await api.get("/v1/wallet/transactions", params=params)
    other = await merchant_b.get("/v1/wallet/transactions", params=params)

    assert [call["transaction_id"] for call in own.json()["data"]] == [bet_id]
    assert (other.status_code, other.json()["data"]) == (200, [])


def installation_provider_event(event: dict[str, Any]) -> bool:
    """A health change of one of the installation's providers (`sandbox-cards`), which every
    merchant routes over and sees; a merchant's own account (`pa_...`) is its own."""
    return event["type"] == "provider.health_changed" and not object_id(event).startswith("pa_")


def object_id(event: dict[str, Any]) -> str:
    """The id of the event's object (a wallet transaction's is its transaction_id, a customer's
    limits' their customer's)."""
    obj = event["data"]["object"]
    return str(obj.get("id") or obj.get("transaction_id") or obj["customer_id"])


async def all_events(api: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    after = 0
    while True:
        page = (await api.get("/v1/events", params={"after": after, "limit": 100})).json()
        for event in page["data"]:
            yield event
            after = event["sequence"]
        if not page["has_more"]:
            return


async def test_objects_of_another_merchant_cannot_be_used_in_a_payment(
    api: httpx.AsyncClient, merchant_b: httpx.AsyncClient
) -> None:
    a_customer = await funded_customer(api, 50_000, "EUR")
    b_customer = await create_customer(merchant_b)
    quote = await api.post(
        "/v1/fx/quotes",
        json={
            "customer_id": a_customer["id"],
            "source_currency": "EUR",
            "target_currency": "USD",
            "source_amount": 10_000,
        },
    )

    deposit = await post_payment(
        merchant_b,
        "/v1/deposits",
        {
            "customer_id": a_customer["id"],
            "amount": 100,
            "currency": "EUR",
            "payment_method": "pm_ok",
        },
    )
    b_quote = await merchant_b.post(
        "/v1/fx/quotes",
        json={
            "customer_id": a_customer["id"],
            "source_currency": "EUR",
            "target_currency": "USD",
            "source_amount": 10_000,
        },
    )
    transfer_on_a_quote = await post_payment(
        merchant_b,
        "/v1/transfers",
        {
            "customer_id": b_customer["id"],
            "quote_id": quote.json()["id"],
            "beneficiary": {"customer_id": b_customer["id"]},
        },
    )
    b_own_quote = await merchant_b.post(
        "/v1/fx/quotes",
        json={
            "customer_id": b_customer["id"],
            "source_currency": "EUR",
            "target_currency": "USD",
            "source_amount": 10_000,
        },
    )
    transfer_to_a_customer = await post_payment(
        merchant_b,
        "/v1/transfers",
        {
            "customer_id": b_customer["id"],
            "quote_id": b_own_quote.json()["id"],
            "beneficiary": {"customer_id": a_customer["id"]},
        },
    )

    assert (deposit.status_code, deposit.json()["code"]) == (404, "customer_not_found")
    assert (b_quote.status_code, b_quote.json()["code"]) == (404, "customer_not_found")
    assert transfer_on_a_quote.status_code == 404
    assert transfer_on_a_quote.json()["code"] == "quote_not_found"
    assert transfer_to_a_customer.status_code == 404
    assert transfer_to_a_customer.json()["code"] == "customer_not_found"
    balances = (await api.get(f"/v1/customers/{a_customer['id']}/balances")).json()["data"]
    assert balances == [
        {"currency": "EUR", "posted": 50_000, "held": 0, "available": 50_000, "receivable": 0}
    ]


async def test_idempotency_keys_and_external_ids_are_each_merchants_own(
    api: httpx.AsyncClient, merchant_b: httpx.AsyncClient
) -> None:
    external_id = f"player-{uuid.uuid4()}"
    a_customer = await create_customer(api, external_id=external_id)
    b_customer = await create_customer(merchant_b, external_id=external_id)
    key = str(uuid.uuid4())

    a_deposit = await post_payment(
        api,
        "/v1/deposits",
        {
            "customer_id": a_customer["id"],
            "amount": 700,
            "currency": "EUR",
            "payment_method": "pm_ok",
        },
        key,
    )
    b_deposit = await post_payment(
        merchant_b,
        "/v1/deposits",
        {
            "customer_id": b_customer["id"],
            "amount": 900,
            "currency": "EUR",
            "payment_method": "pm_ok",
        },
        key,
    )

    assert a_customer["id"] != b_customer["id"]
    assert a_deposit.status_code == b_deposit.status_code == 202, (a_deposit.text, b_deposit.text)
    assert "Idempotent-Replayed" not in b_deposit.headers
    assert a_deposit.json()["id"] != b_deposit.json()["id"]
    assert (await wait_terminal(api, a_deposit.json()["id"]))["status"] == "succeeded"
    assert (await wait_terminal(merchant_b, b_deposit.json()["id"]))["status"] == "succeeded"
    a_balance = (await api.get(f"/v1/customers/{a_customer['id']}/balances")).json()["data"]
    b_balance = (await merchant_b.get(f"/v1/customers/{b_customer['id']}/balances")).json()["data"]
    assert [b["posted"] for b in a_balance] == [700]
    assert [b["posted"] for b in b_balance] == [900]


async def test_platform_key_creates_merchants_and_keys_and_moves_no_money(
    stack: Stack, api: httpx.AsyncClient, platform: httpx.AsyncClient
) -> None:
    customer = await create_customer(api)
    payments = (await api.get("/v1/payments", params={"limit": 1})).json()["data"]

    deposit = await post_payment(
        platform,
        "/v1/deposits",
        {
            "customer_id": customer["id"],
            "amount": 100,
            "currency": "EUR",
            "payment_method": "pm_ok",
        },
    )
    read = await platform.get(f"/v1/payments/{payments[0]['id']}") if payments else None
    own = await platform.get("/v1/merchant")
    by_merchant = await api.post("/v1/merchants", json={"name": "not allowed"})

    assert deposit.status_code == 403 and deposit.json()["code"] == "forbidden"
    assert read is None or read.status_code == 403
    assert own.status_code == 403
    assert by_merchant.status_code == 403

    created = await platform.post("/v1/merchants", json={"name": "Brand C"})
    assert created.status_code == 201, created.text
    merchant_id = created.json()["id"]
    assert merchant_id.startswith("mer_")
    first = await platform.post(
        f"/v1/merchants/{merchant_id}/api-keys", json={"scopes": ["payments"]}
    )
    second = await platform.post(
        f"/v1/merchants/{merchant_id}/api-keys", json={"scopes": ["payments", "ops"]}
    )
    unknown = await platform.post("/v1/merchants/mer_nobody/api-keys", json={"scopes": ["ops"]})
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert unknown.status_code == 404

    # The new merchant's keys: its own merchant, its own (empty) books, and a rotated key
    # replays the first key's request because idempotency keys are the merchant's.
    async with (
        client(stack, first.json()["secret"]) as c1,
        client(stack, second.json()["secret"]) as c2,
    ):
        me = await c1.get("/v1/merchant")
        assert me.json()["id"] == merchant_id and me.json()["name"] == "Brand C"
        assert (await c1.get("/v1/payments")).json()["data"] == []
        assert (await c1.get("/v1/events")).json()["data"] == []
        patch = await c1.patch("/v1/merchant", json={"webhook_url": "https://example.test/hook"})
        assert patch.status_code == 403  # payments scope only
        c_customer = await create_customer(c1)
        body = {
            "customer_id": c_customer["id"],
            "amount": 250,
            "currency": "EUR",
            "payment_method": "pm_ok",
        }
        key = str(uuid.uuid4())
        original = await post_payment(c1, "/v1/deposits", body, key)
        rotated = await post_payment(c2, "/v1/deposits", body, key)
        assert original.status_code == rotated.status_code == 202
        assert rotated.headers.get("Idempotent-Replayed") == "true"
        assert rotated.json()["id"] == original.json()["id"]
        events = (await c2.get("/v1/events")).json()["data"]
        assert [e["sequence"] for e in events][:1] == [1]
        assert events[0]["data"]["object"]["id"] == original.json()["id"]


async def test_merchant_sets_its_webhook_and_never_reads_the_secret_back(
    merchant_b: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    url = f"https://merchant-b.example.test/hooks/{uuid.uuid4().hex}"
    patched = await merchant_b.patch(
        "/v1/merchant", json={"webhook_url": url, "webhook_secret": "whsec_" + "b" * 24}
    )
    bad = await merchant_b.patch("/v1/merchant", json={"webhook_url": "not a url"})
    control = await merchant_b.patch("/v1/merchant", json={"webhook_url": url + "/\x14"})
    short = await merchant_b.patch("/v1/merchant", json={"webhook_secret": "short"})
    payments_only = await api.patch("/v1/merchant", json={"webhook_url": url})

    assert patched.status_code == 200, patched.text
    assert patched.json()["webhook_url"] == url
    assert "webhook_secret" not in patched.json()
    assert (await merchant_b.get("/v1/merchant")).json()["webhook_url"] == url
    assert bad.status_code == control.status_code == short.status_code == 422
    assert payments_only.status_code == 403
    assert (await api.get("/v1/merchant")).json()["id"] == "mer_dev"


async def test_a_webhook_url_needs_a_secret_and_can_be_removed(
    platform: httpx.AsyncClient, stack: Stack
) -> None:
    merchant = (await platform.post("/v1/merchants", json={"name": "Brand D"})).json()
    key = await platform.post(
        f"/v1/merchants/{merchant['id']}/api-keys", json={"scopes": ["payments", "ops"]}
    )
    async with client(stack, key.json()["secret"]) as d:
        no_secret = await d.patch("/v1/merchant", json={"webhook_url": "https://d.example.test/h"})
        both = await d.patch(
            "/v1/merchant",
            json={"webhook_url": "https://d.example.test/h", "webhook_secret": "whsec_" + "d" * 20},
        )
        url_only_later = await d.patch(
            "/v1/merchant", json={"webhook_url": "https://d.example.test/other"}
        )
        removed = await d.patch("/v1/merchant", json={"webhook_url": None})

    assert no_secret.status_code == 422, no_secret.text
    assert both.status_code == 200 and both.json()["webhook_url"] == "https://d.example.test/h"
    assert url_only_later.json()["webhook_url"] == "https://d.example.test/other"  # secret kept
    assert removed.status_code == 200 and removed.json()["webhook_url"] is None
