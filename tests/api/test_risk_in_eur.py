"""Risk limits are in euros whatever the currency, valued at the reference rates."""

from __future__ import annotations

import httpx
import pytest

from tests.stack import create_customer, post_payment, wait_terminal


async def deposit(api: httpx.AsyncClient, amount: int, currency: str) -> dict[str, object]:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": amount,
        "currency": currency,
        "payment_method": "pm_ok",
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    return await wait_terminal(api, response.json()["id"])


@pytest.mark.asyncio(loop_scope="session")
async def test_deposit_limit_is_50000_eur_in_any_currency(api: httpx.AsyncClient) -> None:
    # 1,000,000 KRW is about 676 EUR: far below the limit, though over 50,000 KRW.
    small = await deposit(api, 1_000_000, "KRW")
    # 16,650.001 KWD is just over 50,000 EUR at 0.333 KWD per EUR.
    large = await deposit(api, 16_650_001, "KWD")

    assert (small["status"], small["failure_code"]) == ("succeeded", None)
    assert (large["status"], large["failure_code"]) == ("failed", "risk_declined")
