"""Metrics, request ids and JSON logs of the running stack, after a real deposit."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx

from domain.payments import DEPOSIT_WORKFLOW
from tests.stack import Stack, create_customer, post_payment, wait_terminal


async def succeeded_deposit(api: httpx.AsyncClient) -> str:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 2500,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["id"]
    assert (await wait_terminal(api, payment_id))["status"] == "succeeded"
    return payment_id


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels...}` of a Prometheus text page (labels: a subset)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(3))
    return None


async def test_metrics_count_requests_and_started_deposits(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    await succeeded_deposit(api)

    async with httpx.AsyncClient(base_url=stack.api_url) as anonymous:
        response = await anonymous.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    page = response.text
    deposits = {"method": "POST", "route": "/v1/deposits", "status": "202"}
    assert (sample(page, "paysaga_http_requests_total", **deposits) or 0) >= 1
    payment_route = {"method": "GET", "route": "/v1/payments/{payment_id}"}
    assert (sample(page, "paysaga_http_request_duration_seconds_count", **payment_route) or 0) >= 1
    assert (sample(page, "paysaga_payments_started_total", kind="deposit") or 0) >= 1
    assert (sample(page, "paysaga_routing_decisions_total", reason="priority") or 0) >= 1
    assert "/v1/payments/dep_" not in page  # route templates, never raw paths


async def test_worker_metrics_count_succeeded_deposits(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    await succeeded_deposit(api)

    async with httpx.AsyncClient(timeout=5) as client:

        async def page() -> str:
            return (await client.get(stack.worker_metrics_url)).text

        labels = {"kind": "deposit", "status": "succeeded"}
        assert (sample(await page(), "paysaga_payments_total", **labels) or 0) >= 1
        amount = sample(
            await page(), "paysaga_payment_amount_minor_total", currency="EUR", **labels
        )
        assert (amount or 0) >= 2500
        # The SDK's own metrics, on the same endpoint (the workflow task's completion may lag).
        deadline = time.monotonic() + 10
        while (
            sample(
                await page(), "temporal_workflow_completed_total", workflow_type=DEPOSIT_WORKFLOW
            )
            is None
        ):
            assert time.monotonic() < deadline, "no temporal_workflow_completed_total for Deposit"
            await asyncio.sleep(0.2)


async def test_api_answers_with_request_id(stack: Stack, api: httpx.AsyncClient) -> None:
    given = await api.get("/healthz", headers={"X-Request-Id": "req-test-42"})
    new = await api.get("/healthz")

    assert given.headers["x-request-id"] == "req-test-42"
    assert len(new.headers["x-request-id"]) == 32


async def test_worker_logs_json_lines_with_the_payment_id(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    payment_id = await succeeded_deposit(api)

    lines: list[dict[str, Any]] = []
    for text in stack.worker.log_path.read_text().splitlines():
        if payment_id in text:
            lines.append(json.loads(text))

    assert lines, f"no line of the worker's log mentions {payment_id}"
    succeeded = [line for line in lines if line.get("activity") == "payments.record_status"]
    assert any(line["payment_id"] == payment_id for line in succeeded)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
