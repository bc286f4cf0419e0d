"""Cross-border transfers through the HTTP API: quotes, conversion legs, payouts and reversals."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.money import exponent
from ledger.engine import Ledger
from ledger.models import AccountKind
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
HOUSE = "house"


async def quote(
    api: httpx.AsyncClient, customer_id: str, source: str, target: str, amount: int, **extra: Any
) -> dict[str, Any]:
    body = {
        "customer_id": customer_id,
        "source_currency": source,
        "target_currency": target,
        "source_amount": amount,
        **extra,
    }
    response = await api.post("/v1/fx/quotes", json=body)
    assert response.status_code == 201, response.text
    q: dict[str, Any] = response.json()
    assert q["id"].startswith("quo_")
    return q


async def transfer(
    api: httpx.AsyncClient, customer_id: str, quote_id: str, beneficiary: dict[str, str]
) -> httpx.Response:
    body = {"customer_id": customer_id, "quote_id": quote_id, "beneficiary": beneficiary}
    return await post_payment(api, "/v1/transfers", body)


async def house_positions(pool: AsyncConnectionPool, *currencies: str) -> dict[str, int]:
    ledger = Ledger(pool)
    positions = {}
    for kind in (AccountKind.fx_position, AccountKind.fees, AccountKind.suspense):
        for currency in currencies:
            positions[f"{kind}:{currency}"] = (
                await ledger.balance("mer_dev", HOUSE, kind, currency)
            ).posted
    return positions


def expected_target(q: dict[str, Any]) -> int:
    """The documented rule: (source - fee) at the locked rate, rounded down to a minor unit."""
    shift = exponent(q["target_currency"]) - exponent(q["source_currency"])
    exact = Decimal(q["source_amount"] - q["fee"]) * Decimal(q["rate"]) * Decimal(10) ** shift
    return math.floor(exact)


async def test_internal_transfer_converts_eur_to_usd(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool
) -> None:
    sender = await funded_customer(api, 10_000)
    receiver = await create_customer(api)
    q = await quote(api, sender["id"], "EUR", "USD", 10_000)
    before = await house_positions(db_pool, "EUR", "USD")

    response = await transfer(api, sender["id"], q["id"], {"customer_id": receiver["id"]})
    assert response.status_code == 202, response.text
    done = await wait_terminal(api, response.json()["id"])

    assert done["status"] == "succeeded", done
    assert (done["amount"], done["currency"]) == (10_000, "EUR")
    assert q["target_amount"] == expected_target(q) > 0
    assert q["fee"] > 0
    assert await balance_of(api, sender["id"], "EUR") == {"posted": 0, "held": 0, "available": 0}
    assert (await balance_of(api, receiver["id"], "USD"))["posted"] == q["target_amount"]
    after = await house_positions(db_pool, "EUR", "USD")
    assert after["fx_position:EUR"] - before["fx_position:EUR"] == 10_000 - q["fee"]
    assert after["fx_position:USD"] - before["fx_position:USD"] == -q["target_amount"]
    assert after["fees:EUR"] - before["fees:EUR"] == q["fee"]
    assert (await Ledger(db_pool).audit()).ok


@pytest.mark.parametrize(
    ("source", "target", "amount"),
    [
        ("EUR", "JPY", 12_345),
        ("JPY", "EUR", 4_321),
        ("EUR", "KWD", 10_001),
        ("KWD", "USD", 12_345),
    ],
)
async def test_transfer_rounds_by_currency_exponent(
    api: httpx.AsyncClient, source: str, target: str, amount: int
) -> None:
    sender = await funded_customer(api, amount, currency=source)
    receiver = await create_customer(api)
    q = await quote(api, sender["id"], source, target, amount)

    response = await transfer(api, sender["id"], q["id"], {"customer_id": receiver["id"]})
    done = await wait_terminal(api, response.json()["id"])

    assert done["status"] == "succeeded", done
    assert q["target_amount"] == expected_target(q)
    assert (await balance_of(api, receiver["id"], target))["posted"] == q["target_amount"]
    assert (await balance_of(api, sender["id"], source))["posted"] == 0


async def test_expired_quote_fails_the_transfer(api: httpx.AsyncClient) -> None:
    sender = await funded_customer(api, 5_000)
    receiver = await create_customer(api)
    q = await quote(api, sender["id"], "EUR", "GBP", 5_000, expires_in_seconds=1)
    await asyncio.sleep(1.2)

    response = await transfer(api, sender["id"], q["id"], {"customer_id": receiver["id"]})
    done = await wait_terminal(api, response.json()["id"])

    assert (done["status"], done["failure_code"]) == ("failed", "quote_expired")
    assert (await balance_of(api, sender["id"], "EUR"))["available"] == 5_000
    assert (await balance_of(api, receiver["id"], "GBP"))["posted"] == 0


async def test_quote_is_used_at_most_once(api: httpx.AsyncClient) -> None:
    sender = await funded_customer(api, 5_000)
    receiver = await create_customer(api)
    q = await quote(api, sender["id"], "EUR", "USD", 2_000)

    first = await transfer(api, sender["id"], q["id"], {"customer_id": receiver["id"]})
    second = await transfer(api, sender["id"], q["id"], {"customer_id": receiver["id"]})

    assert first.status_code == 202
    assert second.status_code == 409
    assert second.json()["code"] == "quote_already_used"
    await wait_terminal(api, first.json()["id"])
    assert (await balance_of(api, sender["id"], "EUR"))["posted"] == 3_000


async def test_quote_of_another_customer_is_not_found(api: httpx.AsyncClient) -> None:
    owner = await funded_customer(api, 1_000)
    other = await create_customer(api)
    q = await quote(api, owner["id"], "EUR", "USD", 1_000)

    response = await transfer(api, other["id"], q["id"], {"customer_id": owner["id"]})

    assert response.status_code == 404
    assert response.json()["code"] == "quote_not_found"


async def test_sanctioned_beneficiary_is_refused_before_any_hold(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    sender = await funded_customer(api, 5_000)
    q = await quote(api, sender["id"], "EUR", "USD", 5_000)
    beneficiary = {"name": "Sanctioned Test Person", "country": "US", "account": "pm_ok"}

    response = await transfer(api, sender["id"], q["id"], beneficiary)
    done = await wait_terminal(api, response.json()["id"])

    assert (done["status"], done["failure_code"]) == ("failed", "sanctions_hit")
    assert psp_operations(stack, "sandbox-cards", done["id"]) == []
    assert await balance_of(api, sender["id"], "EUR") == {
        "posted": 5_000,
        "held": 0,
        "available": 5_000,
    }


async def test_external_transfer_pays_out_in_the_target_currency(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    sender = await funded_customer(api, 20_000)
    q = await quote(api, sender["id"], "EUR", "GBP", 20_000)
    before = await house_positions(db_pool, "EUR", "GBP")
    beneficiary = {"name": "Grace Hopper", "country": "GB", "account": "pm_ok"}

    response = await transfer(api, sender["id"], q["id"], beneficiary)
    done = await wait_terminal(api, response.json()["id"])

    assert done["status"] == "succeeded", done
    paid = [
        op for op in psp_operations(stack, "sandbox-cards", done["id"]) if op["kind"] == "payout"
    ]
    assert [(op["amount"], op["currency"], op["status"]) for op in paid] == [
        (q["target_amount"], "GBP", "succeeded")
    ]
    after = await house_positions(db_pool, "EUR", "GBP")
    assert after["suspense:GBP"] == before["suspense:GBP"]  # transit emptied by the settlement
    assert after["fx_position:GBP"] - before["fx_position:GBP"] == -q["target_amount"]
    assert (await balance_of(api, sender["id"], "EUR"))["posted"] == 0


async def test_failed_external_payout_reverses_the_conversion(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    sender = await funded_customer(api, 20_000)
    q = await quote(api, sender["id"], "EUR", "USD", 20_000)
    before = await house_positions(db_pool, "EUR", "USD")
    beneficiary = {"name": "Grace Hopper", "country": "US", "account": "pm_decline"}

    response = await transfer(api, sender["id"], q["id"], beneficiary)
    done = await wait_terminal(api, response.json()["id"])

    assert (done["status"], done["failure_code"]) == ("failed", "provider_declined")
    assert await balance_of(api, sender["id"], "EUR") == {
        "posted": 20_000,
        "held": 0,
        "available": 20_000,
    }
    assert await house_positions(db_pool, "EUR", "USD") == before
    assert (await Ledger(db_pool).audit()).ok
