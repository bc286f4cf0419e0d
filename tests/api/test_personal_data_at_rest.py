"""Personal data at rest: names, birth dates, payment methods and destinations never in clear in
PostgreSQL, while the API still answers them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.stack import Stack, create_customer, funded_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


def raw_row(stack: Stack, table: str, row_id: str) -> dict[str, Any]:
    """The row as PostgreSQL holds it, every column as text."""
    with psycopg.connect(stack.database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            f"SELECT to_jsonb(t)::text AS everything, t.* FROM {table} t WHERE id = %s", (row_id,)
        ).fetchone()
    assert row is not None, f"no {table} row {row_id}"
    return row


def unique_name() -> str:
    return f"Ada Byron {uuid.uuid4().hex[:10]}"


async def test_customer_name_and_birth_date_are_not_stored_in_clear(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    name = unique_name()
    customer = await create_customer(api, full_name=name, birth_date="1987-03-14")

    stored = raw_row(stack, "customers", customer["id"])["everything"]
    answered = (await api.get(f"/v1/customers/{customer['id']}")).json()

    assert name not in stored and "Ada Byron" not in stored
    assert "1987-03-14" not in stored
    assert (customer["full_name"], customer["birth_date"]) == (name, "1987-03-14")
    assert (answered["full_name"], answered["birth_date"]) == (name, "1987-03-14")


async def test_payment_method_and_destination_are_not_stored_in_clear(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await funded_customer(api, 5_000)
    iban = f"DE89{uuid.uuid4().int % 10**18:018d}"
    deposit = await post_payment(
        api,
        "/v1/deposits",
        {
            "customer_id": customer["id"],
            "amount": 100,
            "currency": "EUR",
            "payment_method": "pm_ok",
        },
    )
    withdrawal = await post_payment(
        api,
        "/v1/withdrawals",
        {"customer_id": customer["id"], "amount": 100, "currency": "EUR", "destination": iban},
    )
    assert (deposit.status_code, withdrawal.status_code) == (202, 202), withdrawal.text
    await wait_terminal(api, deposit.json()["id"])
    await wait_terminal(api, withdrawal.json()["id"])

    stored_deposit = raw_row(stack, "payments", deposit.json()["id"])["everything"]
    stored_withdrawal = raw_row(stack, "payments", withdrawal.json()["id"])["everything"]

    assert "pm_ok" not in stored_deposit
    assert iban not in stored_withdrawal and iban[4:] not in stored_withdrawal


async def test_transfer_beneficiary_is_not_stored_in_clear(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    sender = await funded_customer(api, 20_000)
    quote = await api.post(
        "/v1/fx/quotes",
        json={
            "customer_id": sender["id"],
            "source_currency": "EUR",
            "target_currency": "USD",
            "source_amount": 10_000,
        },
    )
    assert quote.status_code == 201, quote.text
    name, account = unique_name(), f"GB29{uuid.uuid4().int % 10**18:018d}"
    beneficiary = {"name": name, "country": "GB", "account": account}
    response = await post_payment(
        api,
        "/v1/transfers",
        {"customer_id": sender["id"], "quote_id": quote.json()["id"], "beneficiary": beneficiary},
    )
    assert response.status_code == 202, response.text
    await wait_terminal(api, response.json()["id"])

    stored = raw_row(stack, "payments", response.json()["id"])["everything"]

    assert name not in stored and account not in stored


async def test_name_moved_to_another_customer_does_not_decrypt(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    victim_name = unique_name()
    victim = await create_customer(api, full_name=victim_name)
    other = await create_customer(api)
    with psycopg.connect(stack.database_url, row_factory=dict_row) as conn:
        original = conn.execute(
            "SELECT full_name_sealed FROM customers WHERE id = %s", (other["id"],)
        ).fetchone()
        assert original is not None
        conn.execute(
            "UPDATE customers SET full_name_sealed ="
            " (SELECT full_name_sealed FROM customers WHERE id = %s) WHERE id = %s",
            (victim["id"], other["id"]),
        )
    try:
        response = await api.get(f"/v1/customers/{other['id']}")
    finally:
        with psycopg.connect(stack.database_url) as conn:
            conn.execute(
                "UPDATE customers SET full_name_sealed = %s WHERE id = %s",
                (original["full_name_sealed"], other["id"]),
            )

    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "personal_data_unreadable"
    assert victim_name not in response.text
    assert (await api.get(f"/v1/customers/{other['id']}")).json()["full_name"] == "Ada Lovelace"
