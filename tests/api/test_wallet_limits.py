"""The wallet writers' limits through HTTP: a second API process on the same database whose one
writer takes one waiting call, stalled by a row lock the test holds, answers the next call 503
`wallet_busy` with `Retry-After` while its neighbours' calls are still booked."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from domain.merchants import DEV_MERCHANT_ID
from paysaga.devstack.stack import free_port
from paysaga.settings import DEV_MERCHANT_KEY
from tests.stack import Service, Stack, funded_customer
from tests.wallet.locks import holding_accounts, until_a_writer_waits_on_a_lock

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def busy_api_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second API process: one wallet writer, one call may wait for it, long time-outs."""
    port = free_port()
    env = {
        **stack.api.env,
        "PAYSAGA_API_PORT": str(port),
        "PAYSAGA_WALLET_WRITERS": "1",
        "PAYSAGA_WALLET_QUEUE_MAX": "1",
        "PAYSAGA_WALLET_LOCK_TIMEOUT_MS": "600000",
        "PAYSAGA_WALLET_STATEMENT_TIMEOUT_MS": "600000",
    }
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("busy-api") / "api.log"
    service = Service("busy-api", [sys.executable, "-m", "api"], env, log, f"{url}/healthz")
    service.start()
    try:
        yield url
    finally:
        service.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def busy_api(busy_api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
    async with httpx.AsyncClient(base_url=busy_api_url, headers=headers, timeout=60) as client:
        yield client


def bet_body(customer_id: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "game_provider": "pragmatic",
        "transaction_id": f"bet-{uuid.uuid4().hex[:12]}",
        "game_id": "book-of-tests",
        "round_id": "r1",
        "amount": 100,
        "currency": "EUR",
    }


async def cash_of(api: httpx.AsyncClient, customer_id: str) -> int:
    response = await api.get(f"/v1/customers/{customer_id}/wallet", params={"currency": "EUR"})
    assert response.status_code == 200, response.text
    cash: int = response.json()["cash"]
    return cash


async def test_a_full_writer_queue_answers_503_wallet_busy_with_retry_after(
    api: httpx.AsyncClient, busy_api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    stuck, first, second = [(await funded_customer(api, 1_000))["id"] for _ in range(3)]
    bodies = {c: bet_body(c) for c in (stuck, first, second)}
    async with holding_accounts(db_pool, DEV_MERCHANT_ID, stuck):
        stalled = asyncio.create_task(busy_api.post("/v1/wallet/bets", json=bodies[stuck]))
        await until_a_writer_waits_on_a_lock(db_pool)  # the writer holds the stuck call
        others = [
            asyncio.create_task(busy_api.post("/v1/wallet/bets", json=bodies[c]))
            for c in (first, second)
        ]
        # one of the two waits in the queue (it cannot be answered while the lock is held);
        # the other finds the queue full and is answered at once
        done, _ = await asyncio.wait(others, return_when=asyncio.FIRST_COMPLETED)
        refused = done.pop().result()
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["code"] == "wallet_busy"
        assert not stalled.done()
    # the lock released: the stalled call and the queued one are booked
    assert (await stalled).status_code == 200
    answers = [await task for task in others]
    queued = answers[1] if answers[0] is refused else answers[0]
    assert queued.status_code == 200, queued.text
    refused_body = bodies[first] if answers[0] is refused else bodies[second]
    again = await busy_api.post("/v1/wallet/bets", json=refused_body)  # sent again, booked
    assert again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in again.headers  # the refused call was never booked
    assert [await cash_of(api, c) for c in (stuck, first, second)] == [900, 900, 900]
