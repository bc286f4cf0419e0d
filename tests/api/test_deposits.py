"""Deposits end to end through the HTTP API, against the real Temporal, PostgreSQL and sandbox PSP."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from providers.webhooks import SIGNATURE_HEADER, sign
from tests.stack import (
    Stack,
    balance_of,
    create_customer,
    post_payment,
    psp_operations,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def deposit(
    api: httpx.AsyncClient, customer_id: str, method: str, amount: int = 10_000, **extra: Any
) -> dict[str, Any]:
    body = {
        "customer_id": customer_id,
        "amount": amount,
        "currency": "EUR",
        "payment_method": method,
    }
    response = await post_payment(api, "/v1/deposits", {**body, **extra})
    assert response.status_code == 202, response.text
    payment: dict[str, Any] = response.json()
    assert payment["status"] == "processing"
    assert payment["id"].startswith("dep_")
    return payment


def succeeded_charges(stack: Stack, provider: str, payment_id: str) -> list[dict[str, Any]]:
    return [
        op
        for op in psp_operations(stack, provider, payment_id)
        if op["kind"] == "charge" and op["status"] == "succeeded"
    ]


@pytest.mark.parametrize(
    "method", ["pm_ok", "pm_no_webhook", "pm_timeout", "pm_flaky", "pm_duplicate_webhook"]
)
async def test_deposit_succeeds_and_credits_once(
    api: httpx.AsyncClient, stack: Stack, method: str
) -> None:
    customer = await create_customer(api)
    payment = await deposit(api, customer["id"], method, amount=12_345)

    done = await wait_terminal(api, payment["id"])

    assert done["status"] == "succeeded", done
    assert done["failure_code"] is None
    assert done["provider"] == "sandbox-cards"
    assert len(succeeded_charges(stack, "sandbox-cards", payment["id"])) == 1
    assert await balance_of(api, customer["id"], "EUR") == {
        "posted": 12_345,
        "held": 0,
        "available": 12_345,
    }
    kyc = (await api.get(f"/v1/customers/{customer['id']}")).json()["kyc_status"]
    assert kyc == "approved"


async def test_deposit_declined_by_provider_credits_nothing(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await create_customer(api)
    payment = await deposit(api, customer["id"], "pm_decline")

    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["failure_code"]) == ("failed", "provider_declined")
    assert succeeded_charges(stack, "sandbox-cards", payment["id"]) == []
    assert await balance_of(api, customer["id"], "EUR") == {"posted": 0, "held": 0, "available": 0}


async def test_deposit_fails_over_when_primary_provider_is_down(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await create_customer(api)
    payment = await deposit(api, customer["id"], "pm_primary_down", amount=5_000)

    done = await wait_terminal(api, payment["id"])

    assert done["status"] == "succeeded", done
    assert done["provider"] == "sandbox-bank"
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []
    assert len(succeeded_charges(stack, "sandbox-bank", payment["id"])) == 1
    assert (await balance_of(api, customer["id"], "EUR"))["posted"] == 5_000


async def test_deposit_with_chosen_provider_uses_it(api: httpx.AsyncClient, stack: Stack) -> None:
    customer = await create_customer(api)
    payment = await deposit(api, customer["id"], "pm_ok", provider="sandbox-bank")

    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["provider"]) == ("succeeded", "sandbox-bank")
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []


@pytest.mark.parametrize(
    ("fields", "failure_code"),
    [
        ({"birth_date": "2015-01-01"}, "kyc_rejected"),
        ({"country": "KP"}, "kyc_rejected"),
        ({"full_name": "Sanctioned Test Person"}, "sanctions_hit"),
    ],
)
async def test_deposit_fails_kyc_before_any_charge(
    api: httpx.AsyncClient, stack: Stack, fields: dict[str, str], failure_code: str
) -> None:
    customer = await create_customer(api, **fields)
    payment = await deposit(api, customer["id"], "pm_ok")

    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["failure_code"]) == ("failed", failure_code)
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []
    assert (await api.get(f"/v1/customers/{customer['id']}")).json()["kyc_status"] == "rejected"
    assert await balance_of(api, customer["id"], "EUR") == {"posted": 0, "held": 0, "available": 0}


async def test_deposit_over_risk_limit_is_declined(api: httpx.AsyncClient, stack: Stack) -> None:
    customer = await create_customer(api)
    payment = await deposit(api, customer["id"], "pm_ok", amount=5_000_001)  # 50,000.01 EUR

    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["failure_code"]) == ("failed", "risk_declined")
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []
    assert (await balance_of(api, customer["id"], "EUR"))["posted"] == 0


async def test_replayed_deposit_returns_the_first_payment(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 777,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    key = str(uuid.uuid4())

    first = await post_payment(api, "/v1/deposits", body, key)
    again = await post_payment(api, "/v1/deposits", dict(reversed(body.items())), key)

    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json()["id"] == first.json()["id"]
    await wait_terminal(api, first.json()["id"])
    assert len(succeeded_charges(stack, "sandbox-cards", first.json()["id"])) == 1
    assert (await balance_of(api, customer["id"], "EUR"))["posted"] == 777
    listed = (await api.get("/v1/payments", params={"customer_id": customer["id"]})).json()
    assert [p["id"] for p in listed["data"]] == [first.json()["id"]]


async def test_reused_idempotency_key_with_other_body_is_refused(api: httpx.AsyncClient) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 100,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    key = str(uuid.uuid4())
    assert (await post_payment(api, "/v1/deposits", body, key)).status_code == 202

    conflict = await post_payment(api, "/v1/deposits", {**body, "amount": 200}, key)

    assert conflict.status_code == 422
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert conflict.json()["code"] == "idempotency_key_reused"
    listed = (await api.get("/v1/payments", params={"customer_id": customer["id"]})).json()
    assert [p["amount"] for p in listed["data"]] == [100]


async def test_deposit_without_idempotency_key_is_refused(api: httpx.AsyncClient) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 100,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }

    response = await api.post("/v1/deposits", json=body)

    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_missing"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": 10.5}, "validation_error"),
        ({"amount": -1}, "validation_error"),
        ({"amount": "100"}, "validation_error"),
        ({"currency": "eur"}, "validation_error"),
        ({"currency": "XXX"}, "validation_error"),
        ({"provider": "nope"}, "validation_error"),
        ({"customer_id": "cus_missing"}, "customer_not_found"),
    ],
)
async def test_invalid_deposit_gets_a_problem(
    api: httpx.AsyncClient, change: dict[str, Any], code: str
) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 100,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }

    response = await post_payment(api, "/v1/deposits", {**body, **change})

    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


async def test_forged_webhook_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await create_customer(api)
    payment = await deposit(api, customer["id"], "pm_decline")
    event = {
        "id": f"evt_forged_{uuid.uuid4().hex}",
        "type": "charge.succeeded",
        "created": int(time.time()),
        "sequence": 99,
        "data": {
            "operation": {
                "id": "ch_forged",
                "kind": "charge",
                "provider": "sandbox-cards",
                "idempotency_key": f"{payment['id']}:charge",
                "reference": payment["id"],
                "amount": 10_000,
                "currency": "EUR",
                "status": "succeeded",
                "decline_code": None,
            }
        },
    }
    body = json.dumps(event).encode()
    headers = {SIGNATURE_HEADER: sign("not-the-secret", body, int(time.time()))}

    forged = await api.post("/v1/webhooks/providers/sandbox-cards", content=body, headers=headers)
    unsigned = await api.post("/v1/webhooks/providers/sandbox-cards", content=body)

    assert forged.status_code == unsigned.status_code == 401
    assert forged.json()["code"] == "invalid_signature"
    done = await wait_terminal(api, payment["id"])
    assert (done["status"], done["failure_code"]) == ("failed", "provider_declined")
    assert (await balance_of(api, customer["id"], "EUR"))["posted"] == 0


async def test_requests_without_a_valid_key_are_unauthorized(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url) as anonymous:
        response = await anonymous.get("/v1/payments")
        wrong = await anonymous.get("/v1/payments", headers={"Authorization": "Bearer sk_nope"})

    assert response.status_code == wrong.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_payments_list_pages_with_a_cursor(api: httpx.AsyncClient) -> None:
    customer = await create_customer(api)
    ids = [
        (await deposit(api, customer["id"], "pm_decline", amount=100 + i))["id"] for i in range(3)
    ]

    first = (
        await api.get("/v1/payments", params={"customer_id": customer["id"], "limit": 2})
    ).json()
    rest = (
        await api.get(
            "/v1/payments",
            params={
                "customer_id": customer["id"],
                "limit": 2,
                "starting_after": first["data"][-1]["id"],
            },
        )
    ).json()

    assert first["has_more"] is True and rest["has_more"] is False
    assert sorted(p["id"] for p in first["data"] + rest["data"]) == sorted(ids)
    assert (await api.get("/v1/payments", params={"limit": 0})).status_code == 422
