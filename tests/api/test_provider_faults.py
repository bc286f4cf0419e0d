"""Provider faults: a call whose answer is lost and that the provider never recorded."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
import pytest

from tests.stack import (
    Stack,
    balance_of,
    funded_customer,
    post_payment,
    psp_operations,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize(
    ("path", "field", "kind"),
    [("/v1/deposits", "payment_method", "charge"), ("/v1/withdrawals", "destination", "payout")],
)
async def test_call_lost_by_a_crashed_provider_is_sent_again_and_moves_money_once(
    api: httpx.AsyncClient, stack: Stack, path: str, field: str, kind: str
) -> None:
    customer = await funded_customer(api, 10_000)
    os.kill(stack.psp.pid, signal.SIGSTOP)  # the provider hangs: our call times out unanswered
    try:
        body: dict[str, Any] = {
            "customer_id": customer["id"],
            "amount": 1_500,
            "currency": "EUR",
            field: "pm_ok",
        }
        payment = (await post_payment(api, path, body)).json()
        while (await api.get(f"/v1/payments/{payment['id']}")).json()["provider"] is None:
            await asyncio.sleep(0.05)  # shown once the call's answer was given up on
    finally:
        stack.psp.restart(crash=True)  # the provider dies with our request unread, then comes back

    done = await wait_terminal(api, payment["id"])

    assert done["status"] == "succeeded", done
    moved = [
        op
        for op in psp_operations(stack, "sandbox-cards", payment["id"])
        if op["kind"] == kind and op["status"] == "succeeded"
    ]
    assert [op["amount"] for op in moved] == [1_500]
    expected = 10_000 + 1_500 if kind == "charge" else 10_000 - 1_500
    assert await balance_of(api, customer["id"], "EUR") == {
        "posted": expected,
        "held": 0,
        "available": expected,
    }
