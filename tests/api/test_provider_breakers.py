"""Circuit breakers through the real stack: a provider down opens its breaker, routing skips it,
probes close it; deposits fail fast with every provider open, withdrawals wait and then pay.

The stack here is the module's own (its database, PSP, worker and API), so that taking a provider
down and opening breakers never reaches another test. Its breakers stay open an hour: a test ends
the open period by back-dating `opened_at`, as an hour passing would, never by sleeping.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from devtools.stack import free_port
from paysaga.database import run_migrations
from paysaga.settings import DEV_MERCHANT_KEY, DEV_OPS_KEY
from tests.api.test_observability import sample
from tests.api.test_refunds import refund, wait_refund
from tests.psp_fixtures import TEST_ENV, SandboxPSPProcess
from tests.stack import (
    STACK_ENV,
    Service,
    Stack,
    create_customer,
    post_payment,
    wait_status,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

CARDS, BANK = "sandbox-cards", "sandbox-bank"


@pytest.fixture(scope="module")
def breaker_stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, temporal_env: WorkflowEnvironment
) -> Iterator[Stack]:
    """A stack of the module's own, with two worker processes sharing the provider calls (and
    the breakers, through PostgreSQL); its breakers open an hour once opened."""
    name = f"breakers_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    run_migrations(database_url)
    logs = tmp_path_factory.mktemp("breaker-stack")
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    psp = SandboxPSPProcess(
        logs / "sandbox_psp.sqlite3", f"{api_url}/v1/webhooks/providers", env=dict(TEST_ENV)
    )
    psp.start()
    task_queue = f"paysaga-breakers-{uuid.uuid4()}"
    worker_metrics = f"127.0.0.1:{free_port()}"
    env = {
        **STACK_ENV,
        "PAYSAGA_BREAKER_MINIMUM_CALLS": "5",
        "PAYSAGA_BREAKER_OPEN_SECONDS": "3600",
        "PAYSAGA_DATABASE_URL": database_url,
        "PAYSAGA_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "PAYSAGA_TASK_QUEUE": task_queue,
        "PAYSAGA_PSP_URL": psp.url,
        "PAYSAGA_API_PORT": str(api_port),
        "PAYSAGA_DATA_DIR": str(logs),
        "PAYSAGA_WORKER_METRICS_ADDRESS": worker_metrics,
        "OTEL_TRACES_EXPORTER": "none",
    }
    worker = Service("worker", [sys.executable, "-m", "worker"], env, logs / "worker.log")
    api = Service(
        "api", [sys.executable, "-m", "api"], env, logs / "api.log", ready_url=f"{api_url}/healthz"
    )
    second_metrics = f"127.0.0.1:{free_port()}"
    second = Service(
        "worker-2",
        [sys.executable, "-m", "worker"],
        {**env, "PAYSAGA_WORKER_METRICS_ADDRESS": second_metrics},
        logs / "worker-2.log",
    )
    the_stack = Stack(api_url, database_url, task_queue, psp, api, worker, [second])
    the_stack.worker_metrics_url = f"http://{worker_metrics}/metrics"
    try:
        worker.start()
        second.start()
        api.start()
        yield the_stack
    finally:
        the_stack.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def bapi(breaker_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The module stack's API with the dev merchant key; every breaker closed, every provider up."""
    with psycopg.connect(breaker_stack.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM provider_health")
    for provider in (CARDS, BANK):
        set_mode(breaker_stack, provider, "ok")
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
    async with httpx.AsyncClient(
        base_url=breaker_stack.api_url, headers=headers, timeout=30
    ) as client:
        yield client


def worker_metrics_urls(stack: Stack) -> list[str]:
    """Both workers' Prometheus pages."""
    second = stack.extra_workers[0].env["PAYSAGA_WORKER_METRICS_ADDRESS"]
    return [stack.worker_metrics_url, f"http://{second}/metrics"]


def set_mode(stack: Stack, provider: str, mode: str) -> None:
    response = httpx.post(f"{stack.psp.url}/{provider}/_sandbox/mode", json={"mode": mode})
    assert response.status_code == 200, response.text


def calls_received(stack: Stack, provider: str) -> int:
    requests: int = httpx.get(f"{stack.psp.url}/{provider}/_sandbox/stats").json()["requests"]
    return requests


def health(stack: Stack, provider: str) -> dict[str, Any]:
    """The provider's health as an operator reads it: `GET /v1/providers`."""
    headers = {"Authorization": f"Bearer {DEV_OPS_KEY}"}
    response = httpx.get(f"{stack.api_url}/v1/providers", headers=headers)
    assert response.status_code == 200, response.text
    accounts = {account["id"]: account for account in response.json()["data"]}
    shown: dict[str, Any] = accounts[provider]["health"]
    return shown


def end_open_period(stack: Stack) -> None:
    """As if the breakers' hour had passed: their probes may go."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE provider_health SET opened_at = opened_at - interval '2 hours'"
            " WHERE state = 'open'"
        )


def open_breakers(stack: Stack, *providers: str) -> None:
    """Open these providers' breakers now, as a run of failed calls would."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for provider in providers:
            conn.execute(
                "INSERT INTO provider_health (provider_account, state, recent, opened_at)"
                " VALUES (%s, 'open', 'fffff', now()) ON CONFLICT (provider_account) DO UPDATE"
                " SET state = 'open', recent = 'fffff', opened_at = now()",
                (provider,),
            )


async def deposit(api: httpx.AsyncClient, customer: dict[str, Any], token: str) -> dict[str, Any]:
    body = {"customer_id": customer["id"], "amount": 1_000, "currency": "EUR"}
    response = await post_payment(api, "/v1/deposits", {**body, "payment_method": token})
    assert response.status_code == 202, response.text
    return await wait_terminal(api, response.json()["id"])


async def test_declines_never_open_a_breaker(bapi: httpx.AsyncClient, breaker_stack: Stack) -> None:
    customer = await create_customer(bapi)

    for _ in range(6):
        assert (await deposit(bapi, customer, "pm_decline"))["failure_code"] == "provider_declined"

    shown = health(breaker_stack, CARDS)
    assert (shown["state"], shown["failure_rate"], shown["calls"]) == ("closed", 0.0, 6)


async def test_provider_down_opens_its_breaker_is_skipped_then_probed_and_closed(
    bapi: httpx.AsyncClient, breaker_stack: Stack
) -> None:
    customer = await create_customer(bapi)
    set_mode(breaker_stack, CARDS, "down")

    # Each deposit fails over to the bank once cards refused it: the customer sees no outage.
    for _ in range(2):
        paid = await deposit(bapi, customer, "pm_ok")
        assert (paid["status"], paid["provider"]) == ("succeeded", BANK)
    shown = health(breaker_stack, CARDS)
    assert shown["state"] == "open"
    assert shown["calls"] >= 5 and shown["failure_rate"] >= 0.5
    assert shown["opened_at"] is not None

    # Open: cards is skipped, not called.
    refused_so_far = calls_received(breaker_stack, CARDS)
    paid = await deposit(bapi, customer, "pm_ok")
    assert (paid["status"], paid["provider"]) == ("succeeded", BANK)
    assert calls_received(breaker_stack, CARDS) == refused_so_far

    # The open period over and cards back, three probes go to cards and close its breaker.
    set_mode(breaker_stack, CARDS, "ok")
    end_open_period(breaker_stack)
    for _ in range(3):
        paid = await deposit(bapi, customer, "pm_ok")
        assert (paid["status"], paid["provider"]) == ("succeeded", CARDS)
    assert calls_received(breaker_stack, CARDS) == refused_so_far + 3
    assert health(breaker_stack, CARDS)["state"] == "closed"


async def test_worker_metrics_show_breaker_state_and_calls(
    bapi: httpx.AsyncClient, breaker_stack: Stack
) -> None:
    customer = await create_customer(bapi)
    set_mode(breaker_stack, CARDS, "down")

    # Failed calls until the breaker opens (earlier tests of the module may have left some in
    # its window), then one more deposit, which skips cards.
    for _ in range(10):
        assert (await deposit(bapi, customer, "pm_ok"))["provider"] == BANK
        if health(breaker_stack, CARDS)["state"] == "open":
            break
    assert health(breaker_stack, CARDS)["state"] == "open"
    assert (await deposit(bapi, customer, "pm_ok"))["provider"] == BANK

    # Two workers, each showing the state it last saw: the one that opened the breaker shows it
    # open, neither shows the bank other than closed; the skipped call is on one of them, the
    # refused ones counted as unavailable and timed.
    pages = [(await bapi.get(url)).text for url in worker_metrics_urls(breaker_stack)]
    cards = [sample(p, "paysaga_provider_breaker_state", provider_account=CARDS) for p in pages]
    bank = [sample(p, "paysaga_provider_breaker_state", provider_account=BANK) for p in pages]

    def total(name: str, **labels: str) -> float:
        return sum(sample(p, name, provider_account=CARDS, **labels) or 0 for p in pages)

    assert 2 in cards  # open
    assert set(bank) <= {None, 0}  # closed
    assert total("paysaga_provider_calls_skipped_total", operation="charge", reason="open") >= 1
    unavailable = total("paysaga_provider_requests_total", operation="charge", answer="unavailable")
    assert unavailable >= 5
    timed = total("paysaga_provider_request_duration_seconds_count", operation="charge")
    assert timed >= unavailable
    assert total("paysaga_provider_breaker_transitions_total", to="open") >= 1
    # The API shows the state every process sees, from PostgreSQL.
    api_page = (await bapi.get("/metrics")).text
    assert sample(api_page, "paysaga_provider_breaker_state", provider_account=CARDS) == 2
    assert sample(api_page, "paysaga_provider_breaker_state", provider_account=BANK) == 0


async def test_breaker_changes_reach_the_merchants_event_feed(
    bapi: httpx.AsyncClient, breaker_stack: Stack
) -> None:
    customer = await create_customer(bapi)
    last = await last_event_sequence(bapi)
    set_mode(breaker_stack, CARDS, "down")
    for _ in range(10):
        assert (await deposit(bapi, customer, "pm_ok"))["provider"] == BANK
        if health(breaker_stack, CARDS)["state"] == "open":
            break
    set_mode(breaker_stack, CARDS, "ok")
    end_open_period(breaker_stack)
    for _ in range(3):
        assert (await deposit(bapi, customer, "pm_ok"))["provider"] == CARDS

    response = await bapi.get(
        "/v1/events", params={"after": last, "type": "provider.health_changed", "limit": 100}
    )
    assert response.status_code == 200, response.text
    changes = [
        (e["data"]["object"]["id"], e["data"]["object"]["health"]["state"])
        for e in response.json()["data"]
    ]
    assert changes == [(CARDS, "open"), (CARDS, "half_open"), (CARDS, "closed")]


async def last_event_sequence(api: httpx.AsyncClient) -> int:
    """The merchant's newest event's sequence (0 with none)."""
    after, last = 0, 0
    while True:
        page = (await api.get("/v1/events", params={"after": after, "limit": 100})).json()
        if page["data"]:
            last = page["data"][-1]["sequence"]
            after = last
        if not page["has_more"]:
            return last


async def test_failed_probe_opens_the_breaker_again(
    bapi: httpx.AsyncClient, breaker_stack: Stack
) -> None:
    customer = await create_customer(bapi)
    set_mode(breaker_stack, CARDS, "down")
    open_breakers(breaker_stack, CARDS)
    end_open_period(breaker_stack)

    paid = await deposit(bapi, customer, "pm_ok")

    assert (paid["status"], paid["provider"]) == ("succeeded", BANK)
    assert health(breaker_stack, CARDS)["state"] == "open"


async def test_deposit_fails_at_once_when_every_provider_is_open(
    bapi: httpx.AsyncClient, breaker_stack: Stack
) -> None:
    customer = await create_customer(bapi)
    open_breakers(breaker_stack, CARDS, BANK)
    before = [calls_received(breaker_stack, p) for p in (CARDS, BANK)]

    failed = await deposit(bapi, customer, "pm_ok")

    assert (failed["status"], failed["failure_code"]) == ("failed", "provider_unavailable")
    assert [calls_received(breaker_stack, p) for p in (CARDS, BANK)] == before


def calls_to_both(stack: Stack) -> int:
    return calls_received(stack, CARDS) + calls_received(stack, BANK)


async def withdrawal_waiting(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> tuple[dict[str, Any], str]:
    """A funded customer's withdrawal started with every breaker open, once its saga waits on a
    timer for one to close; no payout was asked of any provider meanwhile."""
    customer = await create_customer(api)
    assert (await deposit(api, customer, "pm_ok"))["status"] == "succeeded"
    open_breakers(stack, CARDS, BANK)
    calls_before = calls_to_both(stack)
    body = {"customer_id": customer["id"], "amount": 400, "currency": "EUR", "destination": "pm_ok"}
    response = await post_payment(api, "/v1/withdrawals", body)
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["id"]
    await wait_for_timer(temporal_env, payment_id)
    assert calls_to_both(stack) == calls_before
    return customer, payment_id


async def wait_for_timer(temporal_env: WorkflowEnvironment, workflow_id: str) -> None:
    """Until the saga waits on a timer (the breaker's): its history shows one started."""
    handle = temporal_env.client.get_workflow_handle(workflow_id)

    async def timer_started() -> bool:
        history = await handle.fetch_history()
        return any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)

    await wait_until_async(timer_started)


async def wait_until_async(condition: Any, timeout: float = 60.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.05)


async def test_withdrawal_waits_for_an_open_breaker_then_pays_once(
    bapi: httpx.AsyncClient, breaker_stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer, payment_id = await withdrawal_waiting(bapi, breaker_stack, temporal_env)
    calls_before = calls_to_both(breaker_stack)
    payment = (await bapi.get(f"/v1/payments/{payment_id}")).json()
    assert payment["status"] == "processing"

    end_open_period(breaker_stack)
    paid = await wait_terminal(bapi, payment_id)

    assert (paid["status"], paid["provider"]) == ("succeeded", CARDS)
    assert calls_to_both(breaker_stack) == calls_before + 1
    balance = (await bapi.get(f"/v1/customers/{customer['id']}/balances")).json()["data"]
    assert [(b["posted"], b["held"]) for b in balance if b["currency"] == "EUR"] == [(600, 0)]


async def test_withdrawal_waiting_for_a_breaker_can_be_canceled(
    bapi: httpx.AsyncClient, breaker_stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer, payment_id = await withdrawal_waiting(bapi, breaker_stack, temporal_env)

    # Refused 409 while a skipped attempt is in flight (an attempt may be a probe that sends):
    # accepted during the wait on the timer, which is most of the time.
    async def canceled() -> bool:
        response = await bapi.post(f"/v1/payments/{payment_id}/cancel")
        assert response.status_code in (200, 409), response.text
        return response.status_code == 200

    await wait_until_async(canceled)
    done = await wait_status(bapi, payment_id, {"canceled", "failed", "succeeded"})
    assert done["status"] == "canceled"
    balance = (await bapi.get(f"/v1/customers/{customer['id']}/balances")).json()["data"]
    assert [(b["posted"], b["held"]) for b in balance if b["currency"] == "EUR"] == [(1_000, 0)]


async def test_refund_waits_for_its_providers_breaker_then_refunds_once(
    bapi: httpx.AsyncClient, breaker_stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer = await create_customer(bapi)
    paid = await deposit(bapi, customer, "pm_ok")
    assert paid["provider"] == CARDS
    open_breakers(breaker_stack, CARDS)
    calls_before = calls_to_both(breaker_stack)

    response = await refund(bapi, paid["id"], amount=300)
    assert response.status_code == 202, response.text
    refund_id = response.json()["id"]
    await wait_for_timer(temporal_env, refund_id)
    assert calls_to_both(breaker_stack) == calls_before
    end_open_period(breaker_stack)

    assert (await wait_refund(bapi, refund_id))["status"] == "succeeded"
    assert calls_to_both(breaker_stack) == calls_before + 1
