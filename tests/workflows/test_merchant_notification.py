"""Merchant notifications: retried with backoff, given up on after 3 days, a final 4xx at once.

Real Temporal (the time-skipping test server, so three days pass in seconds), real PostgreSQL, a
real HTTP endpoint playing the merchant.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.merchant import MerchantActivities
from domain.payments import MerchantEvent
from paysaga.notifications import DeadLetters
from paysaga.store import Store
from workflows.merchant_notification import (
    MerchantNotificationWorkflow,
    MerchantRedeliveryWorkflow,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Merchant:
    """An HTTP endpoint answering each POST with the next planned status (then the last one)."""

    def __init__(self) -> None:
        self.plan: list[int] = [200]
        self.received = 0
        merchant = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = merchant.plan[min(merchant.received, len(merchant.plan) - 1)]
                merchant.received += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def merchant() -> Iterator[Merchant]:
    endpoint = Merchant()
    yield endpoint
    endpoint.server.shutdown()


@pytest.fixture
def env(time_skipping_env: WorkflowEnvironment) -> WorkflowEnvironment:
    return time_skipping_env


async def a_payment(store: Store) -> str:
    customer = await store.create_customer(
        "mer_dev",
        f"cus_{uuid.uuid4().hex[:12]}",
        f"ext-{uuid.uuid4()}",
        "Ada Lovelace",
        date(1990, 1, 1),
        "DE",
    )
    assert customer is not None
    payment = await store.insert_payment(
        "mer_dev", f"dep_{uuid.uuid4().hex[:12]}", "deposit", customer.id, 500, "EUR", None, {}
    )
    return payment.id


async def notify(
    env: WorkflowEnvironment, db_pool: AsyncConnectionPool, merchant: Merchant, workflow: str
) -> tuple[str, MerchantEvent]:
    store = Store(db_pool)
    event = MerchantEvent(f"evt_{uuid.uuid4().hex}", await a_payment(store), "succeeded")
    queue = f"notify-{uuid.uuid4()}"
    async with httpx.AsyncClient() as http:
        activities = MerchantActivities(store, http, merchant.url, "whsec_test")
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[MerchantNotificationWorkflow, MerchantRedeliveryWorkflow],
            activities=[activities.notify, activities.dead_letter, activities.redelivered],
        ):
            outcome: str = await env.client.execute_workflow(
                workflow, event, id=f"{event.event_id}:{workflow}", task_queue=queue
            )
    return outcome, event


async def test_merchant_down_for_three_days_is_given_up_into_the_dead_letters(
    env: WorkflowEnvironment, db_pool: AsyncConnectionPool, merchant: Merchant
) -> None:
    merchant.plan, merchant.received = [503], 0

    outcome, event = await notify(env, db_pool, merchant, "MerchantNotification")

    assert outcome == "dead_letter"
    assert merchant.received > 100  # retried with backoff, up to every 10 minutes, for 3 days
    letter = await DeadLetters(db_pool).get(event.event_id)
    assert letter is not None
    assert (letter.payment_id, letter.payment_status, letter.state) == (
        event.payment_id,
        "succeeded",
        "dead",
    )
    assert letter.reason == "not taken within 3 days (last: the merchant answered 503)"


@pytest.mark.parametrize("status", [400, 404, 410])
async def test_a_final_4xx_is_given_up_at_once(
    env: WorkflowEnvironment, db_pool: AsyncConnectionPool, merchant: Merchant, status: int
) -> None:
    merchant.plan, merchant.received = [status], 0

    outcome, event = await notify(env, db_pool, merchant, "MerchantNotification")

    assert (outcome, merchant.received) == ("dead_letter", 1)
    letter = await DeadLetters(db_pool).get(event.event_id)
    assert letter is not None and letter.reason == f"the merchant answered {status}"


@pytest.mark.parametrize("status", [408, 429, 500])
async def test_408_429_and_5xx_are_retried_until_taken(
    env: WorkflowEnvironment, db_pool: AsyncConnectionPool, merchant: Merchant, status: int
) -> None:
    merchant.plan, merchant.received = [status, status, 204], 0

    outcome, event = await notify(env, db_pool, merchant, "MerchantNotification")

    assert (outcome, merchant.received) == ("delivered", 3)
    assert await DeadLetters(db_pool).get(event.event_id) is None


async def test_a_redelivery_that_is_taken_leaves_the_list_one_that_fails_returns(
    env: WorkflowEnvironment, db_pool: AsyncConnectionPool, merchant: Merchant
) -> None:
    letters = DeadLetters(db_pool)
    merchant.plan, merchant.received = [410], 0
    _, event = await notify(env, db_pool, merchant, "MerchantNotification")
    assert await letters.start_redelivery(event.event_id) is not None
    assert await letters.start_redelivery(event.event_id) is None  # one at a time

    merchant.plan, merchant.received = [200], 0
    async with httpx.AsyncClient() as http:
        store = Store(db_pool)
        activities = MerchantActivities(store, http, merchant.url, "whsec_test")
        queue = f"redeliver-{uuid.uuid4()}"
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[MerchantRedeliveryWorkflow],
            activities=[activities.notify, activities.dead_letter, activities.redelivered],
        ):
            outcome = await env.client.execute_workflow(
                "MerchantRedelivery", event, id=f"{event.event_id}:again", task_queue=queue
            )

    assert (outcome, merchant.received) == ("delivered", 1)
    assert await letters.get(event.event_id) is None
