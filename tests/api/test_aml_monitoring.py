"""AML monitoring rules through the HTTP API, each on a merchant of its own (they are per merchant).

Each test sets the merchant's `compliance` with `PATCH /v1/merchant` and asserts what the operator
sees: the withdrawal in `requires_review` with its `review_reasons`, or not.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from paysaga.settings import DEV_PLATFORM_KEY
from tests.api.test_observability import sample
from tests.stack import Stack, funded_customer, post_payment, wait_status, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def merchant(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A new merchant's client with a payments + ops key, its compliance rules all off."""
    platform_headers = {"Authorization": f"Bearer {DEV_PLATFORM_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=platform_headers) as platform:
        created = await platform.post("/v1/merchants", json={"name": f"aml-{uuid.uuid4().hex[:8]}"})
        assert created.status_code == 201, created.text
        key = await platform.post(
            f"/v1/merchants/{created.json()['id']}/api-keys", json={"scopes": ["payments", "ops"]}
        )
        assert key.status_code == 201, key.text
    headers = {"Authorization": f"Bearer {key.json()['secret']}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


async def set_compliance(api: httpx.AsyncClient, **rules: Any) -> dict[str, Any]:
    response = await api.patch("/v1/merchant", json={"compliance": rules})
    assert response.status_code == 200, response.text
    compliance: dict[str, Any] = response.json()["compliance"]
    return compliance


async def withdraw(api: httpx.AsyncClient, customer_id: str, amount: int) -> dict[str, Any]:
    body = {"customer_id": customer_id, "amount": amount, "currency": "EUR", "destination": "pm_ok"}
    response = await post_payment(api, "/v1/withdrawals", body)
    assert response.status_code == 202, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def deposit(api: httpx.AsyncClient, customer_id: str, amount: int) -> None:
    body = {
        "customer_id": customer_id,
        "amount": amount,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    assert (await wait_terminal(api, response.json()["id"]))["status"] == "succeeded"


async def play(api: httpx.AsyncClient, customer_id: str, amount: int) -> None:
    """A settled bet of `amount` that wins its amount back (its round closed)."""
    bet_id = f"bet-{uuid.uuid4().hex[:12]}"
    bet = {
        "customer_id": customer_id,
        "game_provider": "aml-games",
        "transaction_id": bet_id,
        "game_id": "slots",
        "round_id": bet_id,
        "amount": amount,
        "currency": "EUR",
    }
    assert (await api.post("/v1/wallet/bets", json=bet)).status_code == 200
    win = {
        "customer_id": customer_id,
        "game_provider": "aml-games",
        "transaction_id": f"win-{bet_id}",
        "bet_transaction_id": bet_id,
        "amount": amount,
        "round_closed": True,
    }
    assert (await api.post("/v1/wallet/wins", json=win)).status_code == 200


async def test_compliance_rules_are_off_by_default(merchant: httpx.AsyncClient) -> None:
    shown = (await merchant.get("/v1/merchant")).json()["compliance"]
    assert shown == {
        "min_wagering_before_withdrawal": 0,
        "structuring_deposits": 0,
        "edd_threshold_eur": 0,
    }
    customer = await funded_customer(merchant, 10_000)
    payment = await withdraw(merchant, customer["id"], 5_000)
    done = await wait_terminal(merchant, payment["id"])
    assert done["status"] == "succeeded" and done["review_reasons"] is None


async def test_low_wagering_sends_withdrawal_to_review(merchant: httpx.AsyncClient) -> None:
    assert (await set_compliance(merchant, min_wagering_before_withdrawal=1))[
        "min_wagering_before_withdrawal"
    ] == 1
    idle = await funded_customer(merchant, 10_000)
    await play(merchant, idle["id"], 9_999)  # one minor unit short of the deposits
    payment = await withdraw(merchant, idle["id"], 1)
    in_review = await wait_status(merchant, payment["id"], {"requires_review"})
    assert in_review["review_reasons"] == ["low_wagering"]
    listed = await merchant.get(
        "/v1/payments", params={"status": "requires_review", "customer_id": idle["id"]}
    )
    assert [p["review_reasons"] for p in listed.json()["data"]] == [["low_wagering"]]
    approved = await merchant.post(
        f"/v1/payments/{payment['id']}/review", json={"decision": "approve", "reason": "ok"}
    )
    assert approved.status_code == 200, approved.text
    done = await wait_terminal(merchant, payment["id"])
    assert done["status"] == "succeeded" and done["review_reasons"] == ["low_wagering"]

    player = await funded_customer(merchant, 10_000)
    await play(merchant, player["id"], 10_000)  # exactly the deposits: enough
    payment = await withdraw(merchant, player["id"], 500)
    assert (await wait_terminal(merchant, payment["id"]))["status"] == "succeeded"
    # Since that withdrawal, nothing deposited: nothing to wager.
    payment = await withdraw(merchant, player["id"], 100)
    assert (await wait_terminal(merchant, payment["id"]))["status"] == "succeeded"


async def test_structuring_deposits_send_withdrawal_to_review(merchant: httpx.AsyncClient) -> None:
    await set_compliance(merchant, structuring_deposits=3)
    customer = await funded_customer(merchant, 460_000)  # 4,600 EUR: just under 5,000
    await deposit(merchant, customer["id"], 450_000)  # exactly 90 %: counts
    payment = await withdraw(merchant, customer["id"], 1_000)
    assert (await wait_terminal(merchant, payment["id"]))["status"] == "succeeded"  # two only
    await deposit(merchant, customer["id"], 499_999)
    payment = await withdraw(merchant, customer["id"], 1_000)
    in_review = await wait_status(merchant, payment["id"], {"requires_review"})
    assert in_review["review_reasons"] == ["structuring"]


async def test_cumulative_deposits_require_due_diligence(
    stack: Stack, merchant: httpx.AsyncClient
) -> None:
    await set_compliance(merchant, edd_threshold_eur=150)
    customer = await funded_customer(merchant, 15_000)  # 150 EUR: not over
    payment = await withdraw(merchant, customer["id"], 100)
    assert (await wait_terminal(merchant, payment["id"]))["status"] == "succeeded"
    await deposit(merchant, customer["id"], 1)
    payment = await withdraw(merchant, customer["id"], 100)
    in_review = await wait_status(merchant, payment["id"], {"requires_review"})
    assert in_review["review_reasons"] == ["edd_required"]
    async with httpx.AsyncClient(timeout=5) as client:
        page = (await client.get(stack.worker_metrics_url)).text
    assert (sample(page, "paysaga_aml_reviews_total", rule="edd_required") or 0) >= 1


async def test_large_amount_review_shows_its_reason(merchant: httpx.AsyncClient) -> None:
    customer = await funded_customer(merchant, 600_000)
    payment = await withdraw(merchant, customer["id"], 500_000)
    in_review = await wait_status(merchant, payment["id"], {"requires_review"})
    assert in_review["review_reasons"] == ["large_amount"]


async def test_compliance_refuses_bad_values(merchant: httpx.AsyncClient) -> None:
    for rules in ({"min_wagering_before_withdrawal": -1}, {"structuring_deposits": 1.5}, {"x": 1}):
        response = await merchant.patch("/v1/merchant", json={"compliance": rules})
        assert response.status_code == 422, response.text
