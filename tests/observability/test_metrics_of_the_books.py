"""The metrics an on-call engineer reads: sagas ended, payments waiting, the outbox, the audit,
the wallet's batches and refusals, the database pool. Each after real traffic on the stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.api.test_observability import sample
from tests.api.test_wallet import game_for
from tests.stack import Stack, create_customer, post_payment, wait_status, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def api_page(stack: Stack) -> str:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as anonymous:
        response = await anonymous.get("/metrics")
    assert response.status_code == 200
    return response.text


async def worker_page(stack: Stack) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(stack.worker_metrics_url)).text


async def eventually(
    page: Callable[[], Awaitable[str]], name: str, at_least: float, **labels: str
) -> float:
    """The sample once it reaches `at_least` (gauges are refreshed every second in the stack)."""
    deadline = time.monotonic() + 30
    while (value := sample(await page(), name, **labels) or 0) < at_least:
        assert time.monotonic() < deadline, f"{name}{labels} = {value}, expected >= {at_least}"
        await asyncio.sleep(0.2)
    return value


async def deposit(api: httpx.AsyncClient, method: str) -> str:
    customer = await create_customer(api)
    body = {"customer_id": customer["id"], "amount": 700, "currency": "EUR"}
    response = await post_payment(api, "/v1/deposits", {**body, "payment_method": method})
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["id"]
    return payment_id


async def test_sagas_ended_count_failure_codes_and_time_to_terminal(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    before = (
        sample(
            await worker_page(stack),
            "paysaga_payments_total",
            kind="deposit",
            status="failed",
            failure_code="provider_declined",
        )
        or 0
    )
    declined = await deposit(api, "pm_decline")
    assert (await wait_terminal(api, declined))["failure_code"] == "provider_declined"
    await wait_terminal(api, await deposit(api, "pm_ok"))

    page = lambda: worker_page(stack)  # noqa: E731
    labels = {"kind": "deposit", "status": "failed", "failure_code": "provider_declined"}
    await eventually(page, "paysaga_payments_total", before + 1, **labels)
    await eventually(
        page, "paysaga_payments_total", 1, kind="deposit", status="succeeded", failure_code=""
    )
    timed = {"kind": "deposit", "status": "succeeded"}
    await eventually(page, "paysaga_payment_time_to_terminal_seconds_count", 1, **timed)
    assert sample(
        await page(), "paysaga_payment_time_to_terminal_seconds_bucket", le="+Inf", **timed
    )
    # The worker's own PostgreSQL pool, beside the API's.
    await eventually(page, "paysaga_database_pool_connections", 1, state="max")
    # The SDK's durations in seconds, with their unit.
    await eventually(page, "temporal_workflow_task_schedule_to_start_latency_seconds_count", 1)


async def test_payments_waiting_gauge_shows_a_deposit_awaiting_its_customer(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    payment_id = await deposit(api, "pm_3ds_required")
    await wait_status(api, payment_id, {"requires_action"})

    labels = {"status": "requires_action", "age_bucket": "lt_1m"}
    await eventually(lambda: api_page(stack), "paysaga_payments_waiting", 1, **labels)
    page = await api_page(stack)
    # Every status and age bucket is served, zeros included: an alert sees a fall to zero.
    assert sample(page, "paysaga_payments_waiting", status="processing", age_bucket="gt_24h") == 0
    for name in (
        "paysaga_outbox_pending_deliveries",
        "paysaga_outbox_dead_letters",
        "paysaga_outbox_oldest_pending_age_seconds",
    ):
        assert sample(page, name) is not None, name


async def test_ledger_audit_runs_on_its_schedule_and_passes(stack: Stack) -> None:
    page = lambda: api_page(stack)  # noqa: E731
    await eventually(page, "paysaga_ledger_audit_runs_total", 1, result="passed")

    text = await api_page(stack)
    assert sample(text, "paysaga_ledger_audit_runs_total", result="failed") == 0
    assert sample(text, "paysaga_ledger_audit_failed_checks") == 0
    assert (sample(text, "paysaga_ledger_audit_duration_seconds_count") or 0) >= 1
    assert (sample(text, "paysaga_ledger_audit_last_run_timestamp_seconds") or 0) > 0


async def test_wallet_metrics_count_batches_and_refusals_by_code(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    refused = {"type": "bet", "outcome": "insufficient_funds"}
    before = await api_page(stack)
    game = await game_for(api, 500)
    bet = await game.bet(1_000)
    assert bet.status_code == 402, bet.text

    after = await api_page(stack)
    counted = sample(after, "paysaga_wallet_calls_total", **refused) or 0
    assert counted == (sample(before, "paysaga_wallet_calls_total", **refused) or 0) + 1
    batches = sample(after, "paysaga_wallet_batch_calls_count") or 0
    assert batches >= (sample(before, "paysaga_wallet_batch_calls_count") or 0) + 1
    assert (sample(after, "paysaga_database_pool_connections", state="max") or 0) >= 1
