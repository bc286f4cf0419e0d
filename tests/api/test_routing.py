"""Success-rate routing through the HTTP API: declines at one provider move deposits to another.

An API process of the test's own judges a rate from 3 attempts and never explores (the session's
stack keeps its deposits in the priority order, which other tests rely on); a merchant of the
test's own keeps the counts apart from every other test's deposits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.idempotency import derived_id, request_fingerprint
from api.schemas import DepositCreate
from devtools.stack import free_port
from paysaga.codec import data_converter
from paysaga.settings import DEV_PLATFORM_KEY, Settings
from paysaga.store import Store
from tests.stack import Service, Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")

MIN_ATTEMPTS = 3


@pytest.fixture(scope="module")
def routing_api_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second API process on the stack: rates judged from 3 attempts, no exploration."""
    port = free_port()
    env = {
        **stack.api.env,
        "PAYSAGA_API_PORT": str(port),
        "PAYSAGA_ROUTING_MIN_ATTEMPTS": str(MIN_ATTEMPTS),
        "PAYSAGA_ROUTING_EXPLORATION_SHARE": "0",
    }
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("routing") / "api.log"
    api = Service("api-routing", stack.api.argv, env, log, f"{url}/healthz")
    api.start()
    try:
        yield url
    finally:
        api.stop()


@dataclass
class Merchant:
    id: str
    api: httpx.AsyncClient


@pytest_asyncio.fixture(loop_scope="session")
async def merchant(stack: Stack, routing_api_url: str) -> AsyncIterator[Merchant]:
    """A new merchant, with a client (payments) of the routing API: no other test's deposits."""
    headers = {"Authorization": f"Bearer {DEV_PLATFORM_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as platform:
        created = await platform.post("/v1/merchants", json={"name": f"Routing {uuid.uuid4()}"})
        assert created.status_code == 201, created.text
        key = await platform.post(
            f"/v1/merchants/{created.json()['id']}/api-keys",
            json={"scopes": ["payments"], "name": "routing"},
        )
        assert key.status_code == 201, key.text
    headers = {"Authorization": f"Bearer {key.json()['secret']}"}
    async with httpx.AsyncClient(base_url=routing_api_url, headers=headers, timeout=30) as client:
        yield Merchant(created.json()["id"], client)


async def deposits(
    api: httpx.AsyncClient, customer_id: str, count: int, **fields: Any
) -> list[dict[str, Any]]:
    """`count` deposits of the customer started together, each as it ended."""
    body = {"customer_id": customer_id, "amount": 1_000, "currency": "EUR", **fields}
    started = await asyncio.gather(*(post_payment(api, "/v1/deposits", body) for _ in range(count)))
    assert all(response.status_code == 202 for response in started), started[0].text
    return list(await asyncio.gather(*(wait_terminal(api, r.json()["id"]) for r in started)))


async def test_deposit_goes_to_other_provider_after_declines_at_first(
    merchant: Merchant, temporal_env: WorkflowEnvironment
) -> None:
    api = merchant.api
    customer = (await create_customer(api))["id"]
    # sandbox-bank approves what it is given; sandbox-cards, first by priority, declines.
    at_bank = await deposits(
        api, customer, MIN_ATTEMPTS, payment_method="pm_ok", provider="sandbox-bank"
    )
    declined = await deposits(api, customer, MIN_ATTEMPTS, payment_method="pm_decline")

    moved = await deposits(api, customer, 1, payment_method="pm_ok")
    in_usd = await deposits(api, customer, 1, payment_method="pm_ok", currency="USD")

    assert [(p["status"], p["provider"]) for p in at_bank] == [("succeeded", "sandbox-bank")] * 3
    assert at_bank[0]["routing"]["reason"] == "requested"
    assert [(p["failure_code"], p["provider"]) for p in declined] == [
        ("provider_declined", "sandbox-cards")
    ] * 3
    assert declined[0]["routing"] == {
        "reason": "priority",
        "method": "card",
        "candidates": [
            {"id": "sandbox-cards", "priority": 1},
            {"id": "sandbox-bank", "priority": 2},
        ],
        "rates": {"sandbox-bank": 1.0},  # cards had no attempts yet: not judged
    }
    [payment] = moved
    assert (payment["status"], payment["provider"]) == ("succeeded", "sandbox-bank")
    assert payment["routing"] == {
        "reason": "success_rate",
        "method": "card",
        "candidates": [
            {"id": "sandbox-bank", "priority": 2},
            {"id": "sandbox-cards", "priority": 1},
        ],
        "rates": {"sandbox-cards": 0.0, "sandbox-bank": 1.0},
    }
    # Rates are per currency: in USD neither account has attempts, the priority holds.
    assert (in_usd[0]["provider"], in_usd[0]["routing"]["reason"]) == ("sandbox-cards", "priority")
    # The saga carries the same record, for whoever looks at it in Temporal.
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=data_converter(Settings()),
    )
    described = await client.get_workflow_handle(payment["id"]).describe()
    assert await described.memo_value("routing") == payment["routing"]


async def test_retried_deposit_follows_routing_recorded_first(
    merchant: Merchant, db_pool: AsyncConnectionPool
) -> None:
    customer = (await create_customer(merchant.api))["id"]
    body = {"customer_id": customer, "amount": 1_000, "currency": "EUR", "payment_method": "pm_ok"}
    key = str(uuid.uuid4())
    fingerprint = request_fingerprint("/v1/deposits", DepositCreate.model_validate(body))
    payment_id = derived_id("dep_", merchant.id, key, fingerprint)
    recorded = {
        "reason": "exploration",
        "method": "card",
        "candidates": [
            {"id": "sandbox-bank", "priority": 2},
            {"id": "sandbox-cards", "priority": 1},
        ],
        "rates": {},
    }
    # A first attempt recorded the payment and its routing, then could not start the saga.
    await Store(db_pool).insert_customer_payment(
        merchant.id, payment_id, "deposit", customer, 1_000, "EUR", None,
        {"payment_method": "pm_ok"}, recorded,
    )  # fmt: skip

    retried = await post_payment(merchant.api, "/v1/deposits", body, key)
    payment = await wait_terminal(merchant.api, payment_id)

    assert retried.status_code == 202, retried.text
    assert retried.json()["id"] == payment_id
    # Today's decision would be cards first (priority); the saga follows what was recorded.
    assert (payment["status"], payment["provider"]) == ("succeeded", "sandbox-bank")
    assert payment["routing"] == recorded
