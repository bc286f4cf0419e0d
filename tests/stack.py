"""Pytest plugin: the whole paysaga stack as real processes (sandbox PSP, worker, API).

PostgreSQL and Temporal are the session's (see conftest); the worker and the API run as their own
processes, so that tests can kill them (SIGKILL) and restart them like a crash in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client, ScheduleHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from devtools.stack import free_port
from paysaga.settings import DEV_MERCHANT_KEY, DEV_OPS_KEY
from tests.psp_fixtures import TEST_ENV, SandboxPSPProcess, WebhookReceiver, wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"succeeded", "failed", "canceled"}

# Short waits so that webhook timeouts and polling happen within a test, never long sleeps.
STACK_ENV = {
    "PAYSAGA_ENVIRONMENT": "development",  # the dev keys and secrets, said explicitly
    "PAYSAGA_PSP_TIMEOUT_SECONDS": "0.5",
    "PAYSAGA_WEBHOOK_WAIT_SECONDS": "1.5",
    "PAYSAGA_POLL_INTERVAL_SECONDS": "0.2",
    "PAYSAGA_REVIEW_DEADLINE_SECONDS": "10",
    "PAYSAGA_POLL_INTERVAL_MAX_SECONDS": "1",
    "PAYSAGA_REQUIRES_INTERVENTION_AFTER_SECONDS": "4",
    "OTEL_TRACES_EXPORTER": "console",  # spans on each process's stdout, for the trace tests
    # Deposits follow the priority order (tests say where they go): no exploration, and no
    # account ever has the attempts to be judged. tests/api/test_routing.py runs an API of its own.
    "PAYSAGA_ROUTING_EXPLORATION_SHARE": "0",
    "PAYSAGA_ROUTING_MIN_ATTEMPTS": "1000000000",
    "PAYSAGA_DATABASE_POOL_MIN": "1",
    "PAYSAGA_DATABASE_POOL_MAX": "8",
    # Breakers off in the shared stack (a minimum its 20-call window never reaches): `pm_flaky`
    # and `pm_primary_down` refuse calls on purpose, and an opened breaker would move other tests'
    # payments to the other provider. tests/api/test_provider_breakers.py runs its own stack.
    "PAYSAGA_BREAKER_MINIMUM_CALLS": "1000000",
    # The API reads its gauges of the books every second, and audits the ledger once at start.
    "PAYSAGA_METRICS_REFRESH_SECONDS": "1",
    "PYTHONUNBUFFERED": "1",
}


@dataclass
class Service:
    """One process of the stack, restartable by the tests."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def stdout_path(self) -> Path:
        """What the process prints (the console exporter's spans); its logs are in `log_path`.

        Apart, so that a span's indented JSON never sits between the log's JSON lines."""
        return self.log_path.with_suffix(".stdout")

    def start(self) -> None:
        with self.log_path.open("ab") as log, self.stdout_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=log,
            )
        if self.ready_url:
            wait_until(self._ready, timeout=60, interval=0.05)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")
        try:
            return httpx.get(self.ready_url or "", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Stack:
    """The running stack and what the tests need to reach it."""

    api_url: str
    database_url: str
    task_queue: str
    psp: SandboxPSPProcess
    api: Service
    worker: Service
    extra_workers: list[Service] = field(default_factory=list)
    worker_metrics_url: str = ""  # the first worker's Prometheus endpoint

    def stop(self) -> None:
        for service in (self.api, self.worker, *self.extra_workers):
            service.stop()
        self.psp.stop()


def through_pgbouncer(request: pytest.FixtureRequest, postgres_url: str) -> dict[str, str]:
    """With PAYSAGA_TEST_THROUGH_PGBOUNCER=1, the stack's settings that put PgBouncer (transaction
    mode) between its processes and PostgreSQL: `PAYSAGA_TEST_THROUGH_PGBOUNCER=1 pytest
    tests/api/test_deposits.py` runs those tests through it. Else none."""
    if os.environ.get("PAYSAGA_TEST_THROUGH_PGBOUNCER", "") not in ("1", "true"):
        return {}
    bouncer = request.getfixturevalue("pgbouncer")
    return {
        "PAYSAGA_DATABASE_URL": bouncer.url(urlsplit(postgres_url).path.lstrip("/")),
        "PAYSAGA_DATABASE_PREPARED_STATEMENTS": "false",
        "PAYSAGA_DATABASE_LISTEN_URL": postgres_url,
    }


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    temporal_env: WorkflowEnvironment,
    webhook_receiver: WebhookReceiver,
) -> Iterator[Stack]:
    """Sandbox PSP, worker and API processes on free loopback ports, for the whole session."""
    logs = tmp_path_factory.mktemp("stack")
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    psp = SandboxPSPProcess(
        logs / "sandbox_psp.sqlite3", f"{api_url}/v1/webhooks/providers", env=dict(TEST_ENV)
    )
    psp.start()
    task_queue = f"paysaga-test-{uuid.uuid4()}"
    worker_metrics = f"127.0.0.1:{free_port()}"
    env = {
        **STACK_ENV,
        "PAYSAGA_DATABASE_URL": postgres_url,
        "PAYSAGA_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "PAYSAGA_TASK_QUEUE": task_queue,
        "PAYSAGA_PSP_URL": psp.url,
        "PAYSAGA_API_PORT": str(api_port),
        "PAYSAGA_DATA_DIR": str(logs),
        "PAYSAGA_WORKER_METRICS_ADDRESS": worker_metrics,
        # A setting of earlier releases, left set as an upgraded deployment may: nothing reaches it.
        "PAYSAGA_MERCHANT_WEBHOOK_URL": f"{webhook_receiver.url}/merchant",
        **through_pgbouncer(request, postgres_url),
    }
    worker = Service("worker", [sys.executable, "-m", "worker"], env, logs / "worker.log")
    api = Service(
        "api", [sys.executable, "-m", "api"], env, logs / "api.log", ready_url=f"{api_url}/healthz"
    )
    the_stack = Stack(api_url, postgres_url, task_queue, psp, api, worker)
    the_stack.worker_metrics_url = f"http://{worker_metrics}/metrics"
    try:
        worker.start()
        api.start()
        yield the_stack
    finally:
        the_stack.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the stack's API, authenticated with the dev merchant key."""
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def ops_api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the stack's API, authenticated with the dev ops key."""
    headers = {"Authorization": f"Bearer {DEV_OPS_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


async def create_customer(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A new customer (adult, in Germany, not sanctioned unless told otherwise)."""
    body = {
        "external_id": f"ext-{uuid.uuid4()}",
        "full_name": "Ada Lovelace",
        "birth_date": "1990-12-10",
        "country": "DE",
        **fields,
    }
    response = await api.post("/v1/customers", json=body)
    assert response.status_code == 201, response.text
    customer: dict[str, Any] = response.json()
    return customer


async def post_payment(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    """POST a money-moving call with a fresh (or the given) Idempotency-Key."""
    return await api.post(path, json=body, headers={"Idempotency-Key": key or str(uuid.uuid4())})


async def wait_terminal(
    api: httpx.AsyncClient, payment_id: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll the payment until it reaches a terminal status; return it."""
    return await wait_status(api, payment_id, TERMINAL, timeout)


async def wait_status(
    api: httpx.AsyncClient, payment_id: str, statuses: set[str], timeout: float = 60.0
) -> dict[str, Any]:
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"/v1/payments/{payment_id}")
        assert response.status_code == 200, response.text
        payment: dict[str, Any] = response.json()
        if payment["status"] in statuses:
            return payment
        if time.monotonic() > deadline:
            raise AssertionError(f"{payment_id} still {payment['status']} after {timeout}s")
        await asyncio.sleep(0.05)


async def balance_of(api: httpx.AsyncClient, customer_id: str, currency: str) -> dict[str, int]:
    """The customer's wallet balance in `currency` (zeros when it has none)."""
    response = await api.get(f"/v1/customers/{customer_id}/balances")
    assert response.status_code == 200, response.text
    for balance in response.json()["data"]:
        if balance["currency"] == currency:
            return {k: balance[k] for k in ("posted", "held", "available")}
    return {"posted": 0, "held": 0, "available": 0}


def psp_operations(stack: Stack, provider: str, reference: str) -> list[dict[str, Any]]:
    """The sandbox PSP's own records for a payment (its books, not ours)."""
    response = httpx.get(f"{stack.psp.url}/{provider}/operations", params={"reference": reference})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def funded_customer(
    api: httpx.AsyncClient, amount: int, currency: str = "EUR"
) -> dict[str, Any]:
    """A customer whose wallet holds `amount` after a succeeded deposit."""
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": amount,
        "currency": currency,
        "payment_method": "pm_ok",
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    assert (await wait_terminal(api, response.json()["id"]))["status"] == "succeeded"
    return customer


def succeeded_operations(stack: Stack, reference: str, kind: str) -> list[dict[str, Any]]:
    """The sandbox's succeeded operations of a kind for a payment, at either provider."""
    return [
        op
        for provider in ("sandbox-cards", "sandbox-bank")
        for op in psp_operations(stack, provider, reference)
        if op["kind"] == kind and op["status"] == "succeeded"
    ]


async def crash_worker(stack: Stack) -> None:
    """SIGKILL the worker mid-flight, leave it dead a second (webhooks still land), restart it."""
    import asyncio

    stack.worker.kill()
    await asyncio.sleep(1.0)
    stack.worker.start()


async def worker_schedule(
    client: Client, schedule_id: str, timeout: float = 60.0
) -> ScheduleHandle:
    """A schedule the stack's worker creates when it starts: wait until it exists."""
    import asyncio

    handle = client.get_schedule_handle(schedule_id)
    deadline = time.monotonic() + timeout
    while True:
        try:
            await handle.describe()
            return handle
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
