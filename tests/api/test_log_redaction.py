"""No personal data in logs: a withdrawal to an IBAN through the stack leaves the IBAN in no line."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.stack import Stack, funded_customer, post_payment, wait_terminal

IBAN = "DE89370400440532013000"


@pytest.mark.asyncio(loop_scope="session")
async def test_withdrawal_to_an_iban_logs_no_iban(api: httpx.AsyncClient, stack: Stack) -> None:
    logs = [stack.psp.log_path, stack.worker.log_path, stack.api.log_path]
    marks = [path.stat().st_size if path.exists() else 0 for path in logs]
    customer = await funded_customer(api, 5_000)
    body = {"customer_id": customer["id"], "amount": 1_500, "currency": "EUR"}
    response = await post_payment(api, "/v1/withdrawals", {**body, "destination": IBAN})
    assert response.status_code == 202, response.text

    payment = await wait_terminal(api, response.json()["id"])

    assert (payment["status"], payment["failure_code"]) == ("failed", "provider_rejected")
    written = {
        path.name: path.read_bytes()[mark:].decode(errors="replace")
        for path, mark in zip(logs, marks, strict=True)
    }
    # The PSP logged its refusal, which quotes the account: the line is there, masked.
    refusals = [
        json.loads(line)
        for line in written[stack.psp.log_path.name].splitlines()
        if "unsupported_payment_method" in line and "/payouts" in line
    ]
    assert refusals and all("[redacted]" in line["message"] for line in refusals)
    for name, text in written.items():
        assert IBAN not in text, name
        assert IBAN[4:] not in text, name  # nor its account digits alone
