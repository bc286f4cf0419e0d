"""Failures leave no personal data in clear: not in histories, logs, or what a client reads."""

from __future__ import annotations

import httpx
import pytest
from temporalio.client import Client

from tests.stack import Stack, create_customer, post_payment, wait_terminal

IBAN = "DE89370400440532013000"


@pytest.mark.asyncio(loop_scope="session")
async def test_rejected_account_stays_out_of_history_log_and_answer(
    api: httpx.AsyncClient, stack: Stack, temporal_client: Client
) -> None:
    customer = await create_customer(api)
    body = {"customer_id": customer["id"], "amount": 1500, "currency": "EUR"}
    response = await post_payment(api, "/v1/deposits", {**body, "payment_method": IBAN})
    assert response.status_code == 202, response.text

    payment = await wait_terminal(api, response.json()["id"])

    assert (payment["status"], payment["failure_code"]) == ("failed", "provider_rejected")
    assert IBAN not in httpx.Response(200, json=payment).text
    # A client without the codec key sees the history as Temporal stores it.
    history = await temporal_client.get_workflow_handle(payment["id"]).fetch_history()
    stored = history.to_json()
    assert IBAN not in stored
    failures = [
        event.activity_task_failed_event_attributes.failure
        for event in history.events
        if event.HasField("activity_task_failed_event_attributes")
    ]
    assert failures, "the rejected charge is an activity failure"
    for failure in failures:
        assert failure.message == "Encoded failure"
        assert failure.stack_trace == ""
        assert failure.HasField("encoded_attributes")
    assert IBAN not in stack.worker.log_path.read_text(errors="replace")
