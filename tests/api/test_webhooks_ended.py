"""Provider webhooks to a saga whose row is already terminal: acknowledged and recorded, not
signalled (a Temporal RPC for nothing); every other saga still gets its signal."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from paysaga.settings import Settings
from paysaga.store import Store
from providers.webhooks import SIGNATURE_HEADER, sign
from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROVIDER = "sandbox-cards"


def charge_event(payment_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
    """A final `charge.succeeded` event of the payment's charge, with a new event id."""
    return {
        "id": f"evt_test_{uuid.uuid4().hex}",
        "type": "charge.succeeded",
        "created": int(time.time()),
        "sequence": 2,
        "data": {
            "operation": {
                "id": f"ch_{uuid.uuid4().hex[:24]}",
                "kind": "charge",
                "provider": PROVIDER,
                "idempotency_key": idempotency_key or f"{payment_id}:charge",
                "reference": payment_id,
                "amount": 1000,
                "currency": "EUR",
                "status": "succeeded",
                "decline_code": None,
            }
        },
    }


async def send(api: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    """POST the event signed as the provider signs it (the dev stack's public secret)."""
    body = json.dumps(event).encode()
    secret = Settings(environment="development").psp_webhook_secrets[PROVIDER]
    headers = {SIGNATURE_HEADER: sign(secret, body, int(time.time()))}
    return await api.post(f"/v1/webhooks/providers/{PROVIDER}", content=body, headers=headers)


async def signals(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )


async def recorded(db_pool: AsyncConnectionPool, event_id: str) -> bool:
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM provider_webhook_events WHERE provider = %s AND event_id = %s",
            (PROVIDER, event_id),
        )
        return await cur.fetchone() is not None


@pytest_asyncio.fixture(loop_scope="session")
async def parked(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool, temporal_client: Client, task_queue: str
) -> AsyncIterator[tuple[str, WorkflowHandle[Any, Any]]]:
    """A payment row of the dev merchant, and a running workflow under its id that no worker
    runs: every signal the API sends it shows in its history, whatever the row's status."""
    customer = await create_customer(api)
    payment_id = f"dep_test{uuid.uuid4().hex[:20]}"
    store = Store(db_pool)
    await store.insert_payment(
        "mer_dev", payment_id, "deposit", customer["id"], 1000, "EUR", None, {}
    )
    handle = await temporal_client.start_workflow(
        "Deposit", "parked", id=payment_id, task_queue=task_queue
    )
    yield payment_id, handle
    await handle.terminate("test over")


async def test_a_webhook_to_a_succeeded_payment_is_acknowledged_recorded_and_not_signalled(
    api: httpx.AsyncClient,
    db_pool: AsyncConnectionPool,
    parked: tuple[str, WorkflowHandle[Any, Any]],
) -> None:
    payment_id, handle = parked
    await Store(db_pool).update_payment(payment_id, "succeeded", provider=PROVIDER)
    event = charge_event(payment_id)

    first = await send(api, event)
    again = await send(api, event)

    assert (first.status_code, first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    assert await recorded(db_pool, event["id"])
    assert await signals(handle) == 0


@pytest.mark.parametrize("status", ["processing", "requires_intervention", "requires_review"])
async def test_a_webhook_to_a_payment_not_ended_is_signalled(
    api: httpx.AsyncClient,
    db_pool: AsyncConnectionPool,
    parked: tuple[str, WorkflowHandle[Any, Any]],
    status: str,
) -> None:
    payment_id, handle = parked
    await Store(db_pool).update_payment(payment_id, status)
    event = charge_event(payment_id)

    first = await send(api, event)
    again = await send(api, event)

    assert (first.status_code, first.json()) == (200, {"received": True, "duplicate": False})
    assert again.json() == {"received": True, "duplicate": True}
    assert await recorded(db_pool, event["id"])
    assert await signals(handle) == 1


async def test_a_webhook_to_an_unknown_payment_is_still_acknowledged(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool
) -> None:
    event = charge_event(f"dep_nope{uuid.uuid4().hex[:20]}")

    response = await send(api, event)

    assert (response.status_code, response.json()) == (200, {"received": True, "duplicate": False})
    assert await recorded(db_pool, event["id"])


async def test_a_refund_event_follows_the_refund_row_not_the_deposit_row(
    api: httpx.AsyncClient,
    db_pool: AsyncConnectionPool,
    temporal_client: Client,
    task_queue: str,
) -> None:
    """A refund's events name the succeeded deposit; whether they are signalled is the refund's
    row's business: signalled while it processes, not once it failed or succeeded."""
    store = Store(db_pool)
    customer = await create_customer(api)
    deposit_id = f"dep_test{uuid.uuid4().hex[:20]}"
    await store.insert_payment(
        "mer_dev", deposit_id, "deposit", customer["id"], 1000, "EUR", None, {}
    )
    await store.update_payment(deposit_id, "succeeded", provider=PROVIDER)
    refund_id = f"ref_test{uuid.uuid4().hex[:20]}"
    await store.create_refund("mer_dev", refund_id, deposit_id, 400, None)
    handle = await temporal_client.start_workflow(
        "Refund", "parked", id=refund_id, task_queue=task_queue
    )
    try:
        key = f"{deposit_id}:{refund_id}:refund"
        while_processing = await send(api, charge_event(deposit_id, key))
        assert while_processing.json() == {"received": True, "duplicate": False}
        assert await signals(handle) == 1

        await store.update_refund(refund_id, "succeeded")
        after_the_end = await send(api, charge_event(deposit_id, key))
        assert after_the_end.json() == {"received": True, "duplicate": False}
        assert await signals(handle) == 1
    finally:
        await handle.terminate("test over")


async def test_a_late_settling_deposit_still_gets_its_webhook_and_completes(
    api: httpx.AsyncClient, stack: Stack, temporal_client: Client
) -> None:
    """With the test PSP's webhook delay the charge answers `pending`: the saga waits for the
    webhook, which must still reach it as a signal, and the deposit succeeds."""
    customer = await create_customer(api)
    body = {"customer_id": customer["id"], "amount": 1000, "currency": "EUR"}
    response = await post_payment(api, "/v1/deposits", {**body, "payment_method": "pm_ok"})
    assert response.status_code == 202, response.text
    payment_id = response.json()["id"]

    done = await wait_terminal(api, payment_id)

    assert done["status"] == "succeeded"
    assert await signals(temporal_client.get_workflow_handle(payment_id)) >= 1


async def test_the_webhook_of_a_finished_deposit_redelivered_is_a_duplicate(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    """A PSP's retry of an event already delivered (before the saga ended) is still told apart."""
    customer = await create_customer(api)
    body = {"customer_id": customer["id"], "amount": 1000, "currency": "EUR"}
    response = await post_payment(api, "/v1/deposits", {**body, "payment_method": "pm_ok"})
    payment_id = response.json()["id"]
    assert (await wait_terminal(api, payment_id))["status"] == "succeeded"
    deadline = time.monotonic() + 10
    while True:  # the saga may have ended by polling before its webhook landed
        async with db_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT event_id FROM provider_webhook_events WHERE payment_id = %s",
                (payment_id,),
            )
            seen = [row[0] for row in await cur.fetchall()]
        if seen or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert seen
    event = charge_event(payment_id)
    event["id"] = seen[0]

    response = await send(api, event)

    assert (response.status_code, response.json()) == (200, {"received": True, "duplicate": True})
