"""The start path of a payment in fewer round trips: what it must still guarantee.

The customer check is in the payment's INSERT; the idempotency claim, the INSERT (+ its event) and
the answer's record each go to PostgreSQL in a pipeline. Still: a replay is the first answer byte
for byte, a 5xx releases the key, the row is committed before its workflow starts, and a customer
of another merchant is refused.
"""

from __future__ import annotations

import datetime
import json
import uuid
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from temporalio.client import Client

from api.deps import Services
from api.idempotency import run_once
from api.sagas import start_payment
from domain.errors import ServiceUnavailable
from domain.merchants import DEV_MERCHANT_2_ID, DEV_MERCHANT_ID
from domain.payments import PaymentKind
from paysaga.settings import DEV_MERCHANT_2_KEY
from paysaga.store import MerchantStore, Store
from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def payments_of(db_pool: AsyncConnectionPool, customer_id: str) -> list[str]:
    async with db_pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM payments WHERE customer_id = %s", (customer_id,))
        return [row[0] for row in await cur.fetchall()]


async def events_of(db_pool: AsyncConnectionPool, payment_id: str) -> list[str]:
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT type FROM events WHERE aggregate_id = %s ORDER BY written_order", (payment_id,)
        )
        return [row[0] for row in await cur.fetchall()]


# ---------------------------------------------------------------------- through the HTTP API


async def test_a_deposit_replayed_is_the_first_answer_with_one_row_and_one_event(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 700,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    key = str(uuid.uuid4())

    first = await post_payment(api, "/v1/deposits", body, key)
    again = await post_payment(api, "/v1/deposits", body, key)

    assert first.status_code == again.status_code == 202, first.text
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    payment = first.json()
    assert await payments_of(db_pool, customer["id"]) == [payment["id"]]
    done = await wait_terminal(api, payment["id"])
    assert done["status"] == "succeeded", done
    assert (await events_of(db_pool, payment["id"]))[0] == "payment.created"
    assert (await events_of(db_pool, payment["id"])).count("payment.created") == 1


@pytest.mark.parametrize("path", ["/v1/deposits", "/v1/withdrawals"])
async def test_an_unknown_customer_is_404_replayed_byte_for_byte_and_inserts_nothing(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool, path: str
) -> None:
    customer_id = f"cus_nope{uuid.uuid4().hex[:12]}"
    body: dict[str, Any] = {"customer_id": customer_id, "amount": 500, "currency": "EUR"}
    body |= {"payment_method": "pm_ok"} if path == "/v1/deposits" else {"destination": "pm_ok"}
    key = str(uuid.uuid4())

    first = await post_payment(api, path, body, key)
    again = await post_payment(api, path, body, key)

    assert first.status_code == 404, first.text
    assert first.json()["code"] == "customer_not_found"
    assert (again.status_code, again.content) == (404, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await payments_of(db_pool, customer_id) == []


async def test_a_customer_of_another_merchant_is_404_and_inserts_nothing(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_2_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as other:
        theirs = await create_customer(other)
    body = {
        "customer_id": theirs["id"],
        "amount": 500,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }

    response = await post_payment(api, "/v1/deposits", body)

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "customer_not_found"
    assert await payments_of(db_pool, theirs["id"]) == []


async def test_an_unknown_provider_is_422_but_an_unknown_customer_is_told_first(
    api: httpx.AsyncClient,
) -> None:
    customer = await create_customer(api)
    body = {"amount": 500, "currency": "EUR", "payment_method": "pm_ok", "provider": "nope"}

    known = await post_payment(api, "/v1/deposits", {**body, "customer_id": customer["id"]})
    unknown = await post_payment(api, "/v1/deposits", {**body, "customer_id": "cus_nope"})

    assert (known.status_code, known.json()["code"]) == (422, "validation_error"), known.text
    assert (unknown.status_code, unknown.json()["code"]) == (404, "customer_not_found")


# ---------------------------------------------------------------------- in process


class Answer(BaseModel):
    id: str


class CheckedStart:
    """The session's real Temporal client, checking that the payment row is committed when asked
    to start its workflow (no worker polls the task queue: the workflow waits, then is ended)."""

    def __init__(self, client: Client, pool: AsyncConnectionPool) -> None:
        self.client, self.pool, self.started = client, pool, list[str]()

    async def start_workflow(self, name: str, arg: Any, *, id: str, **options: Any) -> None:
        # Read on another connection: only a committed row is seen.
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT status FROM payments WHERE id = %s", (id,))
            assert await cur.fetchone() == ("processing",), (
                "the workflow would start before its row"
            )
        await self.client.start_workflow(name, arg, id=id, **options)
        self.started.append(id)


async def new_customer(store: Store, merchant_id: str) -> str:
    customer_id = f"cus_t{uuid.uuid4().hex[:16]}"
    row = await store.create_customer(
        merchant_id, customer_id, uuid.uuid4().hex, "Ada L", datetime.date(1990, 1, 1), "DE"
    )
    assert row is not None
    return customer_id


async def start_once(
    books: MerchantStore, temporal: CheckedStart, key: str, customer_id: str
) -> Response:
    settings = SimpleNamespace(task_queue=f"nobody-{uuid.uuid4()}")
    svc = cast(Services, SimpleNamespace(temporal=temporal, settings=settings))
    payment_id = f"dep_t{uuid.uuid5(uuid.NAMESPACE_OID, key).hex[:20]}"

    async def handler() -> Answer:
        payment = await start_payment(
            svc,
            books,
            kind=PaymentKind.DEPOSIT,
            payment_id=payment_id,
            customer_id=customer_id,
            amount=100,
            currency="EUR",
            provider=None,
            details={"payment_method": "pm_ok"},
            workflow_input={},
        )
        return Answer(id=payment.id)

    return await run_once(books, 24, key, "fingerprint", 202, handler)


async def test_a_5xx_releases_the_key_and_the_retry_starts_the_same_payment(
    db_pool: AsyncConnectionPool, temporal_client: Client
) -> None:
    store = Store(db_pool)
    books = store.for_merchant(DEV_MERCHANT_ID)
    customer_id = await new_customer(store, DEV_MERCHANT_ID)
    key = str(uuid.uuid4())
    # Temporal refuses the start (the real server: a namespace it does not have).
    refusing = Client(temporal_client.service_client, namespace=f"none-{uuid.uuid4()}")

    with pytest.raises(ServiceUnavailable):
        await start_once(books, CheckedStart(refusing, db_pool), key, customer_id)
    assert await books.claim_idempotency_key(key, "fingerprint", 24) is None  # released
    await books.release_idempotency_key(key)

    temporal = CheckedStart(temporal_client, db_pool)
    first = await start_once(books, temporal, key, customer_id)
    replay = await start_once(books, temporal, key, customer_id)
    for started in temporal.started:
        await temporal_client.get_workflow_handle(started).terminate("test over")

    assert first.status_code == replay.status_code == 202
    assert bytes(replay.body) == bytes(first.body)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert temporal.started == [json.loads(bytes(first.body))["id"]]
    assert await payments_of(db_pool, customer_id) == temporal.started


async def test_the_insert_refuses_another_merchants_customer_and_keeps_the_pool_sane(
    postgres_url: str,
) -> None:
    """On a pool of one connection: a refused, a repeated and a failing insert each leave the
    connection out of autocommit, with no transaction open."""
    from paysaga.database import open_pool

    pool = await open_pool(postgres_url, min_size=1, max_size=1)
    try:
        store = Store(pool)
        customer_id = await new_customer(store, DEV_MERCHANT_ID)
        theirs = store.for_merchant(DEV_MERCHANT_2_ID)
        ours = store.for_merchant(DEV_MERCHANT_ID)
        payment_id = f"dep_t{uuid.uuid4().hex[:20]}"
        details = {"payment_method": "pm_ok"}

        refused = await theirs.insert_customer_payment(
            payment_id, "deposit", customer_id, 100, "EUR", None, details
        )
        row = await ours.insert_customer_payment(
            payment_id, "deposit", customer_id, 100, "EUR", None, details
        )
        repeated = await ours.insert_customer_payment(
            payment_id, "deposit", customer_id, 100, "EUR", None, details
        )
        with pytest.raises(Exception):  # noqa: B017 - whatever the database refuses it with
            await ours.insert_customer_payment(
                f"dep_t{uuid.uuid4().hex[:20]}", "deposit", customer_id, -5, "EUR", None, details
            )

        assert refused is None
        assert row is not None and row.status == "processing" and row.merchant_id == DEV_MERCHANT_ID
        assert repeated == row
        assert await events_of(pool, payment_id) == ["payment.created"]
        async with pool.connection() as conn:
            assert not conn.autocommit
            cur = await conn.execute("SELECT count(*) FROM payments WHERE id = %s", (payment_id,))
            assert await cur.fetchone() == (1,)
    finally:
        await pool.close()
