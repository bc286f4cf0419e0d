"""Operators find payments in Temporal by the custom search attributes, kept current by the sagas."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from tests.stack import Stack, funded_customer, post_payment, wait_status, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def workflow_ids(client: Client, query: str, expected: set[str]) -> set[str]:
    """The ids the visibility store lists for `query`, once they include `expected`."""
    deadline = time.monotonic() + 30
    while True:
        found = {wf.id async for wf in client.list_workflows(query)}
        if expected <= found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_payments_are_found_by_search_attributes(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    client = temporal_env.client
    customer = await funded_customer(api, 600_000)
    body = {
        "customer_id": customer["id"],
        "amount": 500_000,
        "currency": "EUR",
        "destination": "pm_ok",
    }
    payment = (await post_payment(api, "/v1/withdrawals", body)).json()
    await wait_status(api, payment["id"], {"requires_review"})

    in_review = await workflow_ids(
        client,
        f'PaymentStatus="requires_review" AND CustomerId="{customer["id"]}"',
        {payment["id"]},
    )
    assert in_review == {payment["id"]}

    await api.post(f"/v1/payments/{payment['id']}/cancel")
    await wait_terminal(api, payment["id"])
    canceled = await workflow_ids(
        client,
        f'PaymentStatus="canceled" AND PaymentKind="withdrawal" AND CustomerId="{customer["id"]}"'
        ' AND Currency="EUR" AND AmountMinor=500000 AND RiskDecision="review"',
        {payment["id"]},
    )
    assert canceled == {payment["id"]}
    listed = await api.get(
        "/v1/payments", params={"customer_id": customer["id"], "kind": "deposit"}
    )
    deposit_ids = {p["id"] for p in listed.json()["data"]}
    deposits = await workflow_ids(
        client,
        f'PaymentKind="deposit" AND PaymentStatus="succeeded" AND CustomerId="{customer["id"]}"'
        ' AND Provider="sandbox-cards"',
        deposit_ids,
    )
    assert deposits == deposit_ids and len(deposit_ids) == 1
    described = await client.get_workflow_handle(payment["id"]).describe()
    assert described.typed_search_attributes.get(sa.PAYMENT_STATUS) == "canceled"
    assert described.typed_search_attributes.get(sa.MERCHANT_ID) == "mer_dev"
    of_this_merchant = await workflow_ids(
        client, f'MerchantId="mer_dev" AND CustomerId="{customer["id"]}"', {payment["id"]}
    )
    # Indexed by now (the query above waited for it): the other merchant's query finds none.
    of_other_merchant = await workflow_ids(
        client, f'MerchantId="mer_dev_2" AND CustomerId="{customer["id"]}"', set()
    )
    assert of_other_merchant == set()
    assert of_this_merchant == deposit_ids | {payment["id"]}
