"""Crash tests: the worker is killed with SIGKILL while payments are in flight."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger
from tests.stack import (
    Stack,
    balance_of,
    crash_worker,
    create_customer,
    funded_customer,
    post_payment,
    succeeded_operations,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

METHODS = ["pm_ok", "pm_no_webhook", "pm_timeout", "pm_duplicate_webhook", "pm_flaky", "pm_decline"]


async def test_worker_killed_mid_deposits_charges_and_credits_each_once(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    customers = [await create_customer(api) for _ in range(3)]
    payments: list[dict[str, Any]] = []
    for i in range(12):
        body = {
            "customer_id": customers[i % 3]["id"],
            "amount": 1_000 + i,
            "currency": "EUR",
            "payment_method": METHODS[i % len(METHODS)],
        }
        response = await post_payment(api, "/v1/deposits", body)
        assert response.status_code == 202, response.text
        payments.append(response.json())
    await asyncio.sleep(0.3)  # let the worker get some of them to the provider

    await crash_worker(stack)

    finished = [await wait_terminal(api, p["id"], timeout=120) for p in payments]
    credited: dict[str, int] = defaultdict(int)
    for payment in finished:
        charges = succeeded_operations(stack, payment["id"], "charge")
        if payment["status"] == "succeeded":
            assert len(charges) == 1, payment
            credited[payment["customer_id"]] += payment["amount"]
        else:
            assert (payment["status"], payment["failure_code"]) == ("failed", "provider_declined")
            assert charges == []
    assert sum(1 for p in finished if p["status"] == "succeeded") == 10
    for customer in customers:
        balance = await balance_of(api, customer["id"], "EUR")
        assert balance == {
            "posted": credited[customer["id"]],
            "held": 0,
            "available": credited[customer["id"]],
        }
    report = await Ledger(db_pool).audit()
    assert report.ok, report


async def test_worker_killed_mid_withdrawals_pays_once_and_leaves_no_hold(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    customers = [await funded_customer(api, 20_000) for _ in range(3)]
    payments: list[dict[str, Any]] = []
    for i in range(12):
        body = {
            "customer_id": customers[i % 3]["id"],
            "amount": 1_000 + i,
            "currency": "EUR",
            "destination": METHODS[i % len(METHODS)],
        }
        response = await post_payment(api, "/v1/withdrawals", body)
        assert response.status_code == 202, response.text
        payments.append(response.json())
    await asyncio.sleep(0.3)

    await crash_worker(stack)

    finished = [await wait_terminal(api, p["id"], timeout=120) for p in payments]
    debited: dict[str, int] = defaultdict(int)
    for payment in finished:
        paid = succeeded_operations(stack, payment["id"], "payout")
        if payment["status"] == "succeeded":
            assert [op["amount"] for op in paid] == [payment["amount"]], payment
            debited[payment["customer_id"]] += payment["amount"]
        else:
            assert (payment["status"], payment["failure_code"]) == ("failed", "provider_declined")
            assert paid == []
    assert sum(1 for p in finished if p["status"] == "succeeded") == 10
    for customer in customers:
        left = 20_000 - debited[customer["id"]]
        assert await balance_of(api, customer["id"], "EUR") == {
            "posted": left,
            "held": 0,
            "available": left,
        }
    report = await Ledger(db_pool).audit()
    assert report.ok, report


async def test_worker_killed_mid_transfers_converts_each_once_or_not_at_all(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    senders = [await funded_customer(api, 10_000) for _ in range(4)]
    receiver = await create_customer(api)
    transfers: list[tuple[dict[str, Any], dict[str, Any], bool]] = []
    for i, sender in enumerate(senders * 2):
        quote = (
            await api.post(
                "/v1/fx/quotes",
                json={
                    "customer_id": sender["id"],
                    "source_currency": "EUR",
                    "target_currency": "USD",
                    "source_amount": 2_000,
                },
            )
        ).json()
        beneficiary = (
            {"customer_id": receiver["id"]}
            if i % 2 == 0
            else {
                "name": "Grace Hopper",
                "country": "US",
                "account": ["pm_ok", "pm_decline"][i % 4 // 2],
            }
        )
        body = {"customer_id": sender["id"], "quote_id": quote["id"], "beneficiary": beneficiary}
        response = await post_payment(api, "/v1/transfers", body)
        assert response.status_code == 202, response.text
        transfers.append((response.json(), quote, "account" in beneficiary))
    await asyncio.sleep(0.3)

    await crash_worker(stack)

    received = 0
    debited: dict[str, int] = defaultdict(int)
    for payment, quote, external in transfers:
        done = await wait_terminal(api, payment["id"], timeout=120)
        paid = succeeded_operations(stack, payment["id"], "payout")
        if done["status"] == "succeeded":
            debited[done["customer_id"]] += 2_000
            assert len(paid) == (1 if external else 0)
            received += 0 if external else quote["target_amount"]
        else:
            assert (done["status"], done["failure_code"]) == ("failed", "provider_declined")
            assert paid == []
    assert (await balance_of(api, receiver["id"], "USD"))["posted"] == received
    assert sum(debited.values()) == 2_000 * 6  # 4 internal and 2 of the 4 external succeed
    for sender in senders:
        left = 10_000 - debited[sender["id"]]
        assert await balance_of(api, sender["id"], "EUR") == {
            "posted": left,
            "held": 0,
            "available": left,
        }
    report = await Ledger(db_pool).audit()
    assert report.ok, report
