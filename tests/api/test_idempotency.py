"""Idempotency-Key edge cases: a first request still in flight, and one that died half way."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from api.idempotency import request_fingerprint
from api.main import create_app
from api.schemas import DepositCreate
from domain.merchants import DEV_MERCHANT_ID
from paysaga.settings import Settings
from tests.stack import Stack, create_customer, post_payment, wait_terminal


@pytest.mark.asyncio(loop_scope="session")
async def test_same_key_in_flight_is_409_until_the_claim_is_abandoned(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 300,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    key = str(uuid.uuid4())
    fingerprint = request_fingerprint("/v1/deposits", DepositCreate.model_validate(body))
    async with await psycopg.AsyncConnection.connect(stack.database_url, autocommit=True) as db:
        # A first request with this key is being answered right now: claimed, no response yet.
        await db.execute(
            "INSERT INTO api_idempotency_keys (merchant_id, key, request_hash) VALUES (%s, %s, %s)",
            (DEV_MERCHANT_ID, key, fingerprint),
        )

        in_flight = await post_payment(api, "/v1/deposits", body, key)

        assert in_flight.status_code == 409
        assert in_flight.json()["code"] == "idempotency_key_in_flight"
        # The first request's process died: after a minute its claim is taken over.
        await db.execute(
            "UPDATE api_idempotency_keys SET created_at = now() - interval '2 minutes'"
            " WHERE merchant_id = %s AND key = %s",
            (DEV_MERCHANT_ID, key),
        )

    retried = await post_payment(api, "/v1/deposits", body, key)

    assert retried.status_code == 202, retried.text
    assert (await wait_terminal(api, retried.json()["id"]))["status"] == "succeeded"


def test_production_start_refuses_the_development_keys() -> None:
    with pytest.raises(RuntimeError, match="development"):
        create_app(Settings(environment="production"))
