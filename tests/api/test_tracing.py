"""One trace follows a payment from the API request through the workflow and its activities."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from domain.payments import DEPOSIT_WORKFLOW
from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


def spans(log: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (indented JSON objects)."""
    found, decoder, at = [], json.JSONDecoder(), 0
    while (at := log.find('{\n    "name": ', at)) != -1:
        span, end = decoder.raw_decode(log, at)
        found.append(span)
        at = end
    return found


async def test_one_trace_spans_api_workflow_and_activities(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 900,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    payment = (await post_payment(api, "/v1/deposits", body)).json()
    await wait_terminal(api, payment["id"])

    deadline = time.monotonic() + 30  # the batch processor exports every few seconds
    while True:
        api_spans = spans(stack.api.stdout_path.read_text())
        worker_spans = spans(stack.worker.stdout_path.read_text())
        started = [
            s
            for s in api_spans
            if s["name"] == f"StartWorkflow:{DEPOSIT_WORKFLOW}"
            and s["attributes"].get("temporalWorkflowID") == payment["id"]
        ]
        trace = started[0]["context"]["trace_id"] if started else None
        names = {s["name"] for s in worker_spans if s["context"]["trace_id"] == trace}
        if {f"RunWorkflow:{DEPOSIT_WORKFLOW}", "RunActivity:provider.charge"} <= names:
            break
        assert time.monotonic() < deadline, (trace, sorted(names))
        await asyncio.sleep(0.5)
    request_spans = [s for s in api_spans if s["context"]["trace_id"] == trace]
    assert any(s["name"].startswith("POST /v1/deposits") for s in request_spans), request_spans
