"""A deposit's provider event that arrives before its saga names its provider is held until the
saga ends (no signal: it would land in the saga's last workflow task) or names the provider it
waits on (signal); after the hold it is signalled anyway. Never dropped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowHandle

from paysaga.store import Store
from tests.api.test_webhooks_ended import PROVIDER, charge_event, recorded, send, signals
from tests.stack import create_customer

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def unannounced(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool, temporal_client: Client, task_queue: str
) -> AsyncIterator[tuple[str, WorkflowHandle[Any, Any]]]:
    """A deposit in `processing` with no provider written, and a running workflow under its id
    that no worker runs: every signal the API sends it shows in its history."""
    customer = await create_customer(api)
    payment_id = f"dep_test{uuid.uuid4().hex[:20]}"
    await Store(db_pool).insert_payment(
        "mer_dev", payment_id, "deposit", customer["id"], 1000, "EUR", None, {}
    )
    handle = await temporal_client.start_workflow(
        "Deposit.v2", "parked", id=payment_id, task_queue=f"{task_queue}-nobody"
    )
    yield payment_id, handle
    await handle.terminate("test over")


async def later(seconds: float, write: Any) -> None:
    await asyncio.sleep(seconds)
    await write


@pytest.mark.parametrize(
    ("status", "signals_sent"),
    [("succeeded", 0), ("processing", 1)],
    ids=["ends-meanwhile-not-signalled", "names-its-provider-meanwhile-signalled"],
)
async def test_an_event_held_until_the_deposit_ends_or_names_its_provider(
    api: httpx.AsyncClient,
    db_pool: AsyncConnectionPool,
    unannounced: tuple[str, WorkflowHandle[Any, Any]],
    status: str,
    signals_sent: int,
) -> None:
    payment_id, handle = unannounced
    event = charge_event(payment_id)
    write = Store(db_pool).update_payment(payment_id, status, provider=PROVIDER)

    answer, _ = await asyncio.gather(send(api, event), later(0.3, write))

    assert (answer.status_code, answer.json()) == (200, {"received": True, "duplicate": False})
    assert await recorded(db_pool, event["id"])
    assert await signals(handle) == signals_sent


async def test_an_event_for_a_deposit_that_stays_silent_is_signalled_after_the_hold(
    api: httpx.AsyncClient,
    db_pool: AsyncConnectionPool,
    unannounced: tuple[str, WorkflowHandle[Any, Any]],
) -> None:
    payment_id, handle = unannounced
    event = charge_event(payment_id)

    answer = await send(api, event)
    again = await send(api, event)

    assert (answer.status_code, answer.json()) == (200, {"received": True, "duplicate": False})
    assert again.json() == {"received": True, "duplicate": True}
    assert await signals(handle) == 1
