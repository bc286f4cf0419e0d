"""The wallet's writers through HTTP, with more API processes on the same database: two of them
booking the same calls of the same customers at once, and one whose single writer takes one
waiting call, stalled by a row lock the test holds, answering the next call 503 `wallet_busy`
with `Retry-After` while the calls it took are still booked."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from devtools.stack import free_port
from domain.merchants import DEV_MERCHANT_ID
from paysaga.settings import DEV_MERCHANT_KEY
from tests.stack import Service, Stack, funded_customer
from tests.wallet.conftest import wallet_audit
from tests.wallet.locks import holding_accounts, until_a_writer_waits_on_a_lock

pytestmark = pytest.mark.asyncio(loop_scope="session")


PROVIDER = "pragmatic"


@contextmanager
def another_api(stack: Stack, logs: Path, **settings: str) -> Iterator[str]:
    """Another API process on the stack's database and Temporal, with `settings` (environment
    variables) of its own; its URL."""
    port = free_port()
    env = {**stack.api.env, "PAYSAGA_API_PORT": str(port), **settings}
    url = f"http://127.0.0.1:{port}"
    service = Service("api", [sys.executable, "-m", "api"], env, logs / "api.log", f"{url}/healthz")
    service.start()
    try:
        yield url
    finally:
        service.stop()


@asynccontextmanager
async def client_of(url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def second_api_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second API process with the default settings."""
    with another_api(stack, tmp_path_factory.mktemp("second-api")) as url:
        yield url


@pytest.fixture(scope="module")
def busy_api_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API process with one wallet writer, for which one call may wait; long time-outs."""
    limits = {
        "PAYSAGA_WALLET_WRITERS": "1",
        "PAYSAGA_WALLET_QUEUE_MAX": "1",
        "PAYSAGA_WALLET_LOCK_TIMEOUT_MS": "600000",
        "PAYSAGA_WALLET_STATEMENT_TIMEOUT_MS": "600000",
    }
    with another_api(stack, tmp_path_factory.mktemp("busy-api"), **limits) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def second_api(second_api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(second_api_url) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def busy_api(busy_api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(busy_api_url) as client:
        yield client


def bet_body(customer_id: str, amount: int = 100, round_id: str = "r1") -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "game_provider": PROVIDER,
        "transaction_id": f"bet-{uuid.uuid4().hex[:12]}",
        "game_id": "book-of-tests",
        "round_id": round_id,
        "amount": amount,
        "currency": "EUR",
    }


def win_body(bet: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer_id": bet["customer_id"],
        "game_provider": PROVIDER,
        "transaction_id": f"win-{uuid.uuid4().hex[:12]}",
        "bet_transaction_id": bet["transaction_id"],
        "amount": 2 * bet["amount"],
        "round_closed": True,
    }


async def ledger_transactions(pool: AsyncConnectionPool[Any], transaction_id: str) -> int:
    """How many ledger transactions the game call `transaction_id` posted."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM ledger_transactions WHERE idempotency_key = %s",
            (f"wallet:{DEV_MERCHANT_ID}:{PROVIDER}:{transaction_id}",),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def cash_of(api: httpx.AsyncClient, customer_id: str) -> int:
    response = await api.get(f"/v1/customers/{customer_id}/wallet", params={"currency": "EUR"})
    assert response.status_code == 200, response.text
    cash: int = response.json()["cash"]
    return cash


async def test_two_api_processes_booking_the_same_calls_book_each_once(
    api: httpx.AsyncClient, second_api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    customers = [(await funded_customer(api, 10_000))["id"] for _ in range(3)]
    bets = [bet_body(c, 100 + i, f"r{i}") for c in customers for i in range(8)]
    for path, bodies in (("/v1/wallet/bets", bets), ("/v1/wallet/wins", map(win_body, bets))):
        pairs = await asyncio.gather(  # each call sent to both processes at once
            *(asyncio.gather(api.post(path, json=b), second_api.post(path, json=b)) for b in bodies)
        )
        for one, two in pairs:
            assert one.status_code == two.status_code == 200, (one.text, two.text)
            assert one.json() == two.json()
            replayed = [r.headers.get("Idempotent-Replayed") for r in (one, two)]
            assert sorted(replayed, key=str) == [None, "true"]  # one booked, one replayed
            assert await ledger_transactions(db_pool, one.json()["transaction_id"]) == 1
    for c in customers:
        assert await cash_of(api, c) == 10_000 + sum(100 + i for i in range(8))
    report = await wallet_audit(db_pool)
    assert report.ok, report.format()


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
