"""Withdrawals end to end through the HTTP API: holds, review, routing, failover and cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger
from tests.stack import (
    Stack,
    balance_of,
    funded_customer,
    post_payment,
    psp_operations,
    wait_status,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def withdraw(
    api: httpx.AsyncClient, customer_id: str, amount: int, destination: str = "pm_ok"
) -> dict[str, Any]:
    body = {
        "customer_id": customer_id,
        "amount": amount,
        "currency": "EUR",
        "destination": destination,
    }
    response = await post_payment(api, "/v1/withdrawals", body)
    assert response.status_code == 202, response.text
    payment: dict[str, Any] = response.json()
    assert payment["id"].startswith("wd_")
    return payment


def payouts(stack: Stack, provider: str, payment_id: str, status: str = "succeeded") -> list[Any]:
    return [
        op
        for op in psp_operations(stack, provider, payment_id)
        if op["kind"] == "payout" and op["status"] == status
    ]


def balance(posted: int, held: int = 0) -> dict[str, int]:
    return {"posted": posted, "held": held, "available": posted - held}


async def test_withdrawal_pays_out_and_posts_the_hold(api: httpx.AsyncClient, stack: Stack) -> None:
    customer = await funded_customer(api, 10_000)

    payment = await withdraw(api, customer["id"], 3_000)
    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["provider"]) == ("succeeded", "sandbox-cards")
    assert [op["amount"] for op in payouts(stack, "sandbox-cards", payment["id"])] == [3_000]
    assert await balance_of(api, customer["id"], "EUR") == balance(7_000)


async def test_withdrawal_without_funds_fails_before_any_provider(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await funded_customer(api, 1_000)

    payment = await withdraw(api, customer["id"], 1_001)
    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["failure_code"]) == ("failed", "insufficient_funds")
    for provider in ("sandbox-cards", "sandbox-bank"):
        assert psp_operations(stack, provider, payment["id"]) == []
    assert await balance_of(api, customer["id"], "EUR") == balance(1_000)


async def test_large_withdrawal_waits_for_review_then_approved_pays(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await funded_customer(api, 600_000)
    payment = await withdraw(api, customer["id"], 500_000)  # 5,000.00 EUR: needs review

    await wait_status(api, payment["id"], {"requires_review"})
    assert await balance_of(api, customer["id"], "EUR") == balance(600_000, held=500_000)
    assert payouts(stack, "sandbox-cards", payment["id"], "pending") == []
    merchant_try = await api.post(
        f"/v1/payments/{payment['id']}/review", json={"decision": "approve"}
    )
    assert merchant_try.status_code == 403
    approved = await ops_api.post(
        f"/v1/payments/{payment['id']}/review",
        json={"decision": "approve", "reason": "known player"},
    )

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "processing"
    done = await wait_terminal(api, payment["id"])
    assert done["status"] == "succeeded"
    assert len(payouts(stack, "sandbox-cards", payment["id"])) == 1
    assert await balance_of(api, customer["id"], "EUR") == balance(100_000)


async def test_rejected_review_releases_the_hold(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await funded_customer(api, 500_000)
    payment = await withdraw(api, customer["id"], 500_000)
    await wait_status(api, payment["id"], {"requires_review"})

    rejected = await ops_api.post(
        f"/v1/payments/{payment['id']}/review", json={"decision": "reject", "reason": "suspicious"}
    )

    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["failure_code"]) == (
        "failed",
        "review_rejected",
    )
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []
    assert await balance_of(api, customer["id"], "EUR") == balance(500_000)
    again = await ops_api.post(f"/v1/payments/{payment['id']}/review", json={"decision": "approve"})
    assert again.status_code == 409
    assert again.json()["code"] == "payment_not_in_review"


async def test_review_not_given_before_deadline_rejects(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await funded_customer(api, 500_000)
    payment = await withdraw(api, customer["id"], 500_000)
    await wait_status(api, payment["id"], {"requires_review"})

    done = await wait_terminal(api, payment["id"], timeout=60)  # the stack's deadline is 10 s

    assert (done["status"], done["failure_code"]) == ("failed", "review_rejected")
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []
    assert await balance_of(api, customer["id"], "EUR") == balance(500_000)


async def test_cancel_before_payout_releases_the_hold(api: httpx.AsyncClient, stack: Stack) -> None:
    customer = await funded_customer(api, 500_000)
    payment = await withdraw(api, customer["id"], 500_000)
    await wait_status(api, payment["id"], {"requires_review"})

    canceled = await api.post(f"/v1/payments/{payment['id']}/cancel")

    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []
    assert await balance_of(api, customer["id"], "EUR") == balance(500_000)


async def test_cancel_after_payout_is_refused(api: httpx.AsyncClient, stack: Stack) -> None:
    customer = await funded_customer(api, 10_000)
    payment = await withdraw(api, customer["id"], 4_000, destination="pm_no_webhook")
    while (await api.get(f"/v1/payments/{payment['id']}")).json()["provider"] is None:
        await asyncio.sleep(0.05)  # the provider is shown once the payout is sent

    in_flight = await api.post(f"/v1/payments/{payment['id']}/cancel")
    done = await wait_terminal(api, payment["id"])
    after = await api.post(f"/v1/payments/{payment['id']}/cancel")

    assert in_flight.status_code == after.status_code == 409
    assert after.json()["code"] == "payment_not_cancelable"
    assert done["status"] == "succeeded"
    assert len(payouts(stack, "sandbox-cards", payment["id"])) == 1
    assert await balance_of(api, customer["id"], "EUR") == balance(6_000)


async def test_succeeded_deposit_cannot_be_canceled(api: httpx.AsyncClient) -> None:
    customer = await funded_customer(api, 100)
    listed = (await api.get("/v1/payments", params={"customer_id": customer["id"]})).json()

    response = await api.post(f"/v1/payments/{listed['data'][0]['id']}/cancel")

    assert response.status_code == 409


async def test_primary_down_fails_over_and_pays_once(api: httpx.AsyncClient, stack: Stack) -> None:
    customer = await funded_customer(api, 10_000)

    payment = await withdraw(api, customer["id"], 2_500, destination="pm_primary_down")
    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["provider"]) == ("succeeded", "sandbox-bank")
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []
    assert len(payouts(stack, "sandbox-bank", payment["id"])) == 1
    assert await balance_of(api, customer["id"], "EUR") == balance(7_500)


async def test_timed_out_payout_is_resolved_by_polling_never_paid_twice(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await funded_customer(api, 10_000)

    payment = await withdraw(api, customer["id"], 2_000, destination="pm_timeout")
    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["provider"]) == ("succeeded", "sandbox-cards")
    assert len(payouts(stack, "sandbox-cards", payment["id"])) == 1
    assert psp_operations(stack, "sandbox-bank", payment["id"]) == []
    assert await balance_of(api, customer["id"], "EUR") == balance(8_000)


async def test_declined_payout_voids_the_hold(api: httpx.AsyncClient, stack: Stack) -> None:
    customer = await funded_customer(api, 10_000)

    payment = await withdraw(api, customer["id"], 2_000, destination="pm_decline")
    done = await wait_terminal(api, payment["id"])

    assert (done["status"], done["failure_code"]) == ("failed", "provider_declined")
    assert payouts(stack, "sandbox-cards", payment["id"]) == []
    assert await balance_of(api, customer["id"], "EUR") == balance(10_000)


async def test_concurrent_withdrawals_never_overdraw(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    customer = await funded_customer(api, 10_000)

    started = await asyncio.gather(*(withdraw(api, customer["id"], 1_000) for _ in range(20)))
    done = [await wait_terminal(api, p["id"], timeout=120) for p in started]

    succeeded = [p for p in done if p["status"] == "succeeded"]
    assert len(succeeded) == 10
    assert {p["failure_code"] for p in done if p["status"] != "succeeded"} == {"insufficient_funds"}
    paid = sum(op["amount"] for p in done for op in payouts(stack, "sandbox-cards", p["id"]))
    assert paid == 10_000
    assert await balance_of(api, customer["id"], "EUR") == balance(0)
    assert (await Ledger(db_pool).audit()).ok
