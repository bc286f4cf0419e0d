"""Refunds through the HTTP API on the test stack: each a Refund saga against the sandbox PSP.

After every test the books are clean: the ledger audit (with the service's refund checks) passes,
and the deposit's refunds net to zero against the sandbox's settlement report.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.refunds import refund_of_key
from paysaga.audit import audit_books
from paysaga.reconciliation import ReconciliationBooks, provider_nets
from paysaga.settings import DEV_MERCHANT_2_KEY
from providers.base import SettlementLine
from tests.stack import (
    Stack,
    balance_of,
    create_customer,
    funded_customer,
    post_payment,
    psp_operations,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUND_TERMINAL = {"succeeded", "failed"}


async def deposit_of(api: httpx.AsyncClient, amount: int, method: str = "pm_ok") -> dict[str, Any]:
    """A succeeded deposit of `amount` into a new customer's wallet."""
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": amount,
        "currency": "EUR",
        "payment_method": method,
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    deposit = await wait_terminal(api, response.json()["id"])
    assert deposit["status"] == "succeeded", deposit
    return deposit


async def refund(
    api: httpx.AsyncClient, payment_id: str, key: str | None = None, **body: Any
) -> httpx.Response:
    return await post_payment(api, f"/v1/payments/{payment_id}/refunds", body, key)


async def wait_refund(
    api: httpx.AsyncClient, refund_id: str, timeout: float = 60
) -> dict[str, Any]:
    """Poll the refund until it is terminal; return it."""
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"/v1/refunds/{refund_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        if found["status"] in REFUND_TERMINAL:
            return found
        assert time.monotonic() < deadline, f"{refund_id} still {found['status']}"
        await asyncio.sleep(0.05)


async def refunded(api: httpx.AsyncClient, payment_id: str, *amounts: int) -> list[dict[str, Any]]:
    """Refund the deposit by each amount in turn, each to its end."""
    done = []
    for amount in amounts:
        response = await refund(api, payment_id, amount=amount, reason="customer asked")
        assert response.status_code == 202, response.text
        done.append(await wait_refund(api, response.json()["id"]))
    return done


def refunds_at_psp(stack: Stack, deposit: dict[str, Any]) -> list[dict[str, Any]]:
    """The sandbox's own records of the deposit's refunds (its books, not ours)."""
    return [
        op
        for op in psp_operations(stack, deposit["provider"], deposit["id"])
        if op["kind"] == "refund"
    ]


async def assert_books_clean(
    stack: Stack, db_pool: AsyncConnectionPool, *deposits: dict[str, Any]
) -> None:
    """The audit passes, and each deposit nets to zero against the provider's settlement report."""
    report = await audit_books(db_pool)
    assert report.ok, report.failures
    ledger = ReconciliationBooks(db_pool)
    async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
        for deposit in deposits:
            provider = deposit["provider"]
            rows = (await psp.get(f"/{provider}/settlement-report")).json()["data"]
            lines = [
                SettlementLine(r["kind"], r["reference"], r["amount"], r["currency"], r["id"])
                for r in rows
                if r["reference"] == deposit["id"]
            ]
            key = (deposit["id"], deposit["currency"])
            theirs = provider_nets(lines).get(key, 0)
            ours = (await ledger.ledger_nets(provider)).get(key, 0)
            assert theirs == ours, (deposit["id"], theirs, ours)


async def test_refund_deposit_in_full(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000)

    response = await refund(api, deposit["id"])
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["id"].startswith("ref_")
    assert (accepted["payment_id"], accepted["amount"], accepted["currency"]) == (
        deposit["id"],
        5_000,
        "EUR",
    )
    assert accepted["status"] == "processing"
    done = await wait_refund(api, accepted["id"])

    assert (done["status"], done["failure_code"]) == ("succeeded", None)
    assert await balance_of(api, deposit["customer_id"], "EUR") == {
        "posted": 0,
        "held": 0,
        "available": 0,
    }
    assert [(op["amount"], op["status"]) for op in refunds_at_psp(stack, deposit)] == [
        (5_000, "succeeded")
    ]
    listed = await api.get(f"/v1/payments/{deposit['id']}/refunds")
    assert [r["id"] for r in listed.json()["data"]] == [done["id"]]
    again = await refund(api, deposit["id"])
    assert again.status_code == 422, again.text
    assert again.json()["code"] == "amount_exceeds_refundable"
    await assert_books_clean(stack, db_pool, deposit)


async def test_refund_deposit_in_two_parts_then_nothing_is_left(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000)

    first, second = await refunded(api, deposit["id"], 3_000, 1_500)
    rest = await refund(api, deposit["id"])  # no amount: what is left
    assert rest.status_code == 202, rest.text
    third = await wait_refund(api, rest.json()["id"])

    assert [r["status"] for r in (first, second, third)] == ["succeeded"] * 3
    assert third["amount"] == 500
    assert await balance_of(api, deposit["customer_id"], "EUR") == {
        "posted": 0,
        "held": 0,
        "available": 0,
    }
    assert sorted(op["amount"] for op in refunds_at_psp(stack, deposit)) == [500, 1_500, 3_000]
    listed = (await api.get(f"/v1/payments/{deposit['id']}/refunds", params={"limit": 2})).json()
    assert [r["id"] for r in listed["data"]] == [first["id"], second["id"]]
    assert listed["has_more"] is True
    await assert_books_clean(stack, db_pool, deposit)


async def test_refund_more_than_the_deposit_is_refused(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000)
    await refunded(api, deposit["id"], 2_000)

    response = await refund(api, deposit["id"], amount=3_001)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["code"], problem["refundable"]) == ("amount_exceeds_refundable", 3_000)
    assert [op["amount"] for op in refunds_at_psp(stack, deposit)] == [2_000]
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 3_000
    await assert_books_clean(stack, db_pool, deposit)


async def test_concurrent_refunds_beyond_the_deposit_refuse_exactly_one(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000)

    answers = await asyncio.gather(*(refund(api, deposit["id"], amount=3_000) for _ in range(2)))

    assert sorted(a.status_code for a in answers) == [202, 422], [a.text for a in answers]
    (accepted,) = [a.json() for a in answers if a.status_code == 202]
    (refused,) = [a.json() for a in answers if a.status_code == 422]
    assert refused["code"] == "amount_exceeds_refundable"
    assert (await wait_refund(api, accepted["id"]))["status"] == "succeeded"
    # Many at once: never more refunded than charged.
    answers = await asyncio.gather(*(refund(api, deposit["id"], amount=700) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [202] * 2 + [422] * 4
    for answer in answers:
        if answer.status_code == 202:
            assert (await wait_refund(api, answer.json()["id"]))["status"] == "succeeded"
    refunds = refunds_at_psp(stack, deposit)
    assert sum(op["amount"] for op in refunds if op["status"] == "succeeded") == 4_400
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 600
    await assert_books_clean(stack, db_pool, deposit)


async def test_refund_of_what_is_not_a_succeeded_deposit_is_refused(
    api: httpx.AsyncClient,
) -> None:
    customer = await create_customer(api)
    declined = await post_payment(
        api,
        "/v1/deposits",
        {
            "customer_id": customer["id"],
            "amount": 1_000,
            "currency": "EUR",
            "payment_method": "pm_decline",
        },
    )
    assert (await wait_terminal(api, declined.json()["id"]))["status"] == "failed"
    rich = await funded_customer(api, 5_000)
    withdrawal = await post_payment(
        api,
        "/v1/withdrawals",
        {"customer_id": rich["id"], "amount": 1_000, "currency": "EUR", "destination": "pm_ok"},
    )
    assert (await wait_terminal(api, withdrawal.json()["id"]))["status"] == "succeeded"

    for payment_id in (declined.json()["id"], withdrawal.json()["id"]):
        response = await refund(api, payment_id, amount=100)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "payment_not_refundable"
        listed = await api.get(f"/v1/payments/{payment_id}/refunds")
        assert listed.json()["data"] == []


async def test_refund_declined_by_the_provider_fails_and_leaves_the_wallet_whole(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000, method="pm_no_refund")

    (done,) = await refunded(api, deposit["id"], 2_000)

    assert (done["status"], done["failure_code"]) == ("failed", "provider_declined")
    assert await balance_of(api, deposit["customer_id"], "EUR") == {
        "posted": 5_000,
        "held": 0,
        "available": 5_000,
    }
    assert [(op["amount"], op["status"]) for op in refunds_at_psp(stack, deposit)] == [
        (2_000, "declined")
    ]
    # What the failed refund reserved is refundable again.
    again = await refund(api, deposit["id"], amount=5_000)
    assert again.status_code == 202, again.text
    assert (await wait_refund(api, again.json()["id"]))["failure_code"] == "provider_declined"
    events = (await api.get("/v1/events", params={"type": "refund.failed", "limit": 100})).json()
    assert done["id"] in {e["data"]["object"]["id"] for e in events["data"]}
    await assert_books_clean(stack, db_pool, deposit)


async def test_refund_of_a_spent_wallet_fails_insufficient_funds(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000)
    withdrawal = await post_payment(
        api,
        "/v1/withdrawals",
        {
            "customer_id": deposit["customer_id"],
            "amount": 4_000,
            "currency": "EUR",
            "destination": "pm_ok",
        },
    )
    assert (await wait_terminal(api, withdrawal.json()["id"]))["status"] == "succeeded"

    (done,) = await refunded(api, deposit["id"], 5_000)

    assert (done["status"], done["failure_code"]) == ("failed", "insufficient_funds")
    assert refunds_at_psp(stack, deposit) == []
    assert await balance_of(api, deposit["customer_id"], "EUR") == {
        "posted": 1_000,
        "held": 0,
        "available": 1_000,
    }
    (partial,) = await refunded(api, deposit["id"], 1_000)  # what the wallet still holds
    assert partial["status"] == "succeeded"
    await assert_books_clean(stack, db_pool, deposit)


async def test_refund_request_replays_under_its_idempotency_key(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000)
    key = str(uuid.uuid4())

    first = await refund(api, deposit["id"], key, amount=1_000)
    replay = await refund(api, deposit["id"], key, amount=1_000)
    other_body = await refund(api, deposit["id"], key, amount=2_000)
    missing_key = await api.post(f"/v1/payments/{deposit['id']}/refunds", json={"amount": 1_000})

    assert first.status_code == replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert other_body.status_code == 422 and other_body.json()["code"] == "idempotency_key_reused"
    assert missing_key.status_code == 400
    assert (await wait_refund(api, first.json()["id"]))["status"] == "succeeded"
    assert [op["amount"] for op in refunds_at_psp(stack, deposit)] == [1_000]
    await assert_books_clean(stack, db_pool, deposit)


async def test_another_merchants_refunds_and_payments_are_not_found(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    deposit = await deposit_of(api, 5_000)
    (done,) = await refunded(api, deposit["id"], 1_000)
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_2_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as merchant_b:
        theirs = await merchant_b.get(f"/v1/refunds/{done['id']}")
        missing = await merchant_b.get("/v1/refunds/ref_0000")
        listed = await merchant_b.get(f"/v1/payments/{deposit['id']}/refunds")
        refused = await refund(merchant_b, deposit["id"], amount=1_000)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["code"] == missing.json()["code"] == "not_found"
    assert listed.status_code == 404
    assert refused.status_code == 404, refused.text
    assert [op["amount"] for op in refunds_at_psp(stack, deposit)] == [1_000]


async def test_refund_events_reach_the_refund_saga_by_their_key() -> None:
    """The provider's events of a refund name the deposit (its settlement lines must); the
    webhook route signals the saga its key names."""
    assert refund_of_key("dep_1:ref_2:refund") == "ref_2"
    assert refund_of_key("dep_1:refund") is None  # the deposit saga's own compensation
    assert refund_of_key("dep_1:charge") is None


async def test_resolve_refund_not_waiting_for_an_operator_is_refused(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient
) -> None:
    deposit = await deposit_of(api, 5_000)
    (done,) = await refunded(api, deposit["id"], 1_000)
    body = {"outcome": "failed", "reason": "checked"}

    without_ops = await api.post(f"/v1/refunds/{done['id']}/resolve", json=body)
    too_late = await ops_api.post(f"/v1/refunds/{done['id']}/resolve", json=body)

    assert without_ops.status_code == 403, without_ops.text
    assert too_late.status_code == 409, too_late.text
    assert too_late.json()["code"] == "refund_not_requiring_intervention"
    assert (await api.get(f"/v1/refunds/{done['id']}")).json()["status"] == "succeeded"
