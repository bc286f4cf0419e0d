"""Fixtures of the event feed's tests: a database of their own, merchants, events, a dispatcher.

The feed's tests run every webhook dispatcher against a database of their own on the session's
server: a dispatcher delivers whatever is due in its database, and the stack's worker (on the
session database) must neither take these events nor have its own taken.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from paysaga.database import open_pool, run_migrations
from paysaga.settings import Settings
from paysaga.store import EventRow, Store
from paysaga.store.events import append_event
from paysaga.webhook_delivery import WebhookDispatcher
from paysaga.webhook_egress import Resolve
from tests.events.receiver import MerchantEndpoint

MERCHANT_SECRET = "whsec_merchant_test_0123456789"

# Quick retries and short leases, so that a test sees several attempts in a second or two.
FAST = {
    "environment": "development",
    "webhook_delivery_poll_interval_seconds": 0.05,
    "webhook_delivery_lease_seconds": 5.0,
    "webhook_delivery_timeout_seconds": 2.0,
    "webhook_delivery_retry_initial_seconds": 0.1,
    "webhook_delivery_retry_max_seconds": 0.4,
}


@pytest.fixture(scope="session")
def events_database_url(postgres_url: str) -> Iterator[str]:
    """A migrated database of the feed's tests alone, on the session's PostgreSQL server."""
    name = f"events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    run_migrations(url)
    yield url
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def events_pool(events_database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(events_database_url, min_size=2, max_size=30)
    yield pool
    await pool.close()


@pytest.fixture
def store(events_pool: AsyncConnectionPool) -> Store:
    return Store(events_pool)


async def new_merchant(
    store: Store, url: str | None = None, secret: str | None = MERCHANT_SECRET
) -> str:
    """A merchant of the test's own, with its webhook endpoint when given one."""
    merchant_id = f"mer_{uuid.uuid4().hex[:12]}"
    await store.create_merchant(merchant_id, "Test merchant")
    if url is not None or secret is not None:
        await store.set_merchant_webhook(merchant_id, url, secret)
    return merchant_id


async def new_customer(store: Store, merchant_id: str) -> str:
    customer_id = f"cus_{uuid.uuid4().hex[:12]}"
    row = await store.create_customer(
        merchant_id, customer_id, f"ext-{customer_id}", "Ada Lovelace", date(1990, 12, 10), "DE"
    )
    assert row is not None
    return customer_id


async def emit(store: Store, merchant_id: str, count: int) -> list[EventRow]:
    """`count` events of the merchant, each committed in its own transaction; as numbered by
    the sequencer after their commits."""
    ids = []
    for _ in range(count):
        async with store.pool.connection() as conn, conn.transaction():
            object_id = f"obj_{uuid.uuid4().hex[:12]}"
            event = await append_event(
                conn, merchant_id, "payment.created", "payment", object_id, {"id": object_id}
            )
        ids.append(event.id)
    books = store.for_merchant(merchant_id)
    numbered = [await books.get_event(event_id) for event_id in ids]
    return [event for event in numbered if event is not None]


async def delivery_states(store: Store, merchant_id: str) -> list[dict[str, Any]]:
    """The merchant's deliveries in sequence order, as the dispatcher left them (derived from its
    cursor and the exceptions' rows by `webhook_delivery_states`)."""
    async with store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sequence, status, attempts, last_error, lease_until, next_attempt_at"
            " FROM webhook_delivery_states WHERE merchant_id = %s ORDER BY sequence",
            (merchant_id,),
        )
        names = [column.name for column in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def eventually(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll a (sync or async) predicate until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def settled(store: Store, merchant_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until the merchant's `count` deliveries are all out of `pending`; their states."""

    async def done() -> list[dict[str, Any]] | None:
        states = await delivery_states(store, merchant_id)
        finished = len(states) == count and all(s["status"] != "pending" for s in states)
        return states if finished else None

    result: list[dict[str, Any]] = await eventually(done)
    return result


def fast_settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **{**FAST, **overrides})


@pytest.fixture
def endpoint() -> Iterator[MerchantEndpoint]:
    """A merchant's webhook endpoint on a free loopback port; answers 200 unless told."""
    receiver = MerchantEndpoint()
    receiver.start()
    yield receiver
    receiver.stop()


@asynccontextmanager
async def dispatching(
    store: Store, settings: Settings | None = None, resolve: Resolve | None = None
) -> AsyncIterator[None]:
    """A webhook dispatcher at work for the block's duration, stopped cleanly after it."""
    stop = asyncio.Event()
    dispatcher = WebhookDispatcher(store, settings or fast_settings(), resolve=resolve)
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
