"""`metadata` on customers and payments: the merchant's own pairs, kept as sent, returned on
reads, filtered on lists; out of Stripe's limits it is a 422 `invalid_metadata`, never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from paysaga.settings import DEV_MERCHANT_2_KEY
from tests.events.api_merchants import client
from tests.stack import Stack, create_customer, post_payment

NOT_METADATA: list[Any] = [
    {str(n): "x" for n in range(51)},  # 51 keys
    {"k" * 41: "x"},  # a key of 41 characters
    {"": "x"},  # an empty key
    {"order[id]": "x"},  # a key with brackets (they delimit it in list filters)
    {"order_id": "x" * 501},  # a value of 501 characters
    {"order_id": 123},  # not a string
    {"order_id": None},
    {"nested": {"a": "b"}},
    ["order_id", "123"],
    "order_id=123",
]


async def test_customer_metadata_is_kept_returned_and_filtered(api: httpx.AsyncClient) -> None:
    crm_id = f"crm-{uuid.uuid4().hex}"
    metadata = {"crm_id": crm_id, "segment": "vip", "k" * 40: "v" * 500}
    customer = await create_customer(api, metadata=metadata)
    assert customer["metadata"] == metadata
    read = await api.get(f"/v1/customers/{customer['id']}")
    assert read.json()["metadata"] == metadata
    await create_customer(api, metadata={"crm_id": f"crm-{uuid.uuid4().hex}", "segment": "vip"})

    listed = await api.get("/v1/customers", params={"metadata[crm_id]": crm_id})
    assert listed.status_code == 200, listed.text
    assert [c["id"] for c in listed.json()["data"]] == [customer["id"]]
    both = await api.get(
        "/v1/customers", params={"metadata[crm_id]": crm_id, "metadata[segment]": "vip"}
    )
    assert [c["id"] for c in both.json()["data"]] == [customer["id"]]
    neither = await api.get(
        "/v1/customers", params={"metadata[crm_id]": crm_id, "metadata[segment]": "regular"}
    )
    assert neither.json() == {"data": [], "has_more": False}
    plain = await create_customer(api)
    assert plain["metadata"] == {}


async def test_payment_metadata_is_kept_returned_and_filtered(api: httpx.AsyncClient) -> None:
    customer = await create_customer(api)
    order_id = f"order-{uuid.uuid4().hex}"
    deposit = await post_payment(
        api,
        "/v1/deposits",
        {
            "customer_id": customer["id"],
            "amount": 1000,
            "currency": "EUR",
            "payment_method": "pm_ok",
            "metadata": {"order_id": order_id, "cart": "3 items"},
        },
    )
    assert deposit.status_code == 202, deposit.text
    assert deposit.json()["metadata"] == {"order_id": order_id, "cart": "3 items"}
    other = await post_payment(
        api,
        "/v1/deposits",
        {
            "customer_id": customer["id"],
            "amount": 1000,
            "currency": "EUR",
            "payment_method": "pm_ok",
        },
    )
    assert other.json()["metadata"] == {}
    withdrawal = await post_payment(
        api,
        "/v1/withdrawals",
        {
            "customer_id": customer["id"],
            "amount": 10,
            "currency": "EUR",
            "destination": "pm_ok",
            "metadata": {"order_id": order_id, "payout": "weekly"},
        },
    )
    assert withdrawal.status_code == 202, withdrawal.text

    read = await api.get(f"/v1/payments/{deposit.json()['id']}")
    assert read.json()["metadata"] == {"order_id": order_id, "cart": "3 items"}
    listed = await api.get("/v1/payments", params={"metadata[order_id]": order_id})
    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()["data"]] == [
        withdrawal.json()["id"],
        deposit.json()["id"],
    ]
    deposits = await api.get(
        "/v1/payments", params={"metadata[order_id]": order_id, "kind": "deposit"}
    )
    assert [p["id"] for p in deposits.json()["data"]] == [deposit.json()["id"]]


@pytest.mark.parametrize("metadata", NOT_METADATA)
async def test_metadata_out_of_limits_is_refused(api: httpx.AsyncClient, metadata: Any) -> None:
    customer = await api.post(
        "/v1/customers",
        json={
            "external_id": f"ext-{uuid.uuid4()}",
            "full_name": "Ada Lovelace",
            "birth_date": "1990-12-10",
            "country": "DE",
            "metadata": metadata,
        },
    )
    assert customer.status_code == 422, customer.text
    assert customer.headers["content-type"] == "application/problem+json"
    assert customer.json()["code"] == "invalid_metadata"
    deposit = await post_payment(
        api,
        "/v1/deposits",
        {
            "customer_id": "cus_whoever",
            "amount": 1000,
            "currency": "EUR",
            "payment_method": "pm_ok",
            "metadata": metadata,
        },
    )
    assert deposit.status_code == 422, deposit.text
    assert deposit.json()["code"] == "invalid_metadata"


@pytest.mark.parametrize(
    "params",
    [
        {"metadata[]": "x"},
        {f"metadata[{'k' * 41}]": "x"},
        {"metadata[a[b]]": "x"},
        {"metadata[order_id]": "x" * 501},
        {f"metadata[k{n}]": "x" for n in range(51)},
    ],
)
async def test_metadata_filter_out_of_limits_is_refused(
    api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    for path in ("/v1/payments", "/v1/customers"):
        response = await api.get(path, params=params)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_metadata"


async def test_another_merchants_key_finds_nothing_by_metadata_or_cursor(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    crm_id = f"crm-{uuid.uuid4().hex}"
    customer = await create_customer(api, metadata={"crm_id": crm_id})
    deposit = await post_payment(
        api,
        "/v1/deposits",
        {
            "customer_id": customer["id"],
            "amount": 1000,
            "currency": "EUR",
            "payment_method": "pm_ok",
            "metadata": {"crm_id": crm_id},
        },
    )
    assert deposit.status_code == 202, deposit.text

    async with client(stack, DEV_MERCHANT_2_KEY) as other:
        customers = await other.get("/v1/customers", params={"metadata[crm_id]": crm_id})
        payments = await other.get("/v1/payments", params={"metadata[crm_id]": crm_id})
        cursors = [
            await other.get(path, params={cursor: object_id})
            for path, object_id in (
                ("/v1/customers", customer["id"]),
                ("/v1/payments", deposit.json()["id"]),
            )
            for cursor in ("starting_after", "ending_before")
        ]

    assert customers.json() == {"data": [], "has_more": False}
    assert payments.json() == {"data": [], "has_more": False}
    for answer in cursors:  # answered as a missing one
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "cursor_not_found"
