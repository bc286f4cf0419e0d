"""API keys from the database through the running API: scopes, revocation, the ops audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from paysaga.cli import keys
from paysaga.database import open_pool
from paysaga.store import Store
from tests.api.key_revocation import answer_once_revocation_heard
from tests.stack import (
    Stack,
    create_customer,
    funded_customer,
    post_payment,
    wait_status,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

ClientWithKey = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, str]]]


@pytest.fixture
def client_with_key(stack: Stack) -> ClientWithKey:
    """A client of the API with a new key of these scopes, created as `paysaga keys create` does."""

    @asynccontextmanager
    async def make(*scopes: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
        created = await keys.create_key(stack.database_url, "test key", list(scopes), "mer_dev")
        headers = {"Authorization": f"Bearer {created.secret}"}
        async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as client:
            yield client, created.key_id

    return make


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


async def test_payments_key_lists_payments_but_may_not_act_as_ops(
    client_with_key: ClientWithKey,
) -> None:
    async with client_with_key("payments") as (client, _key_id):
        listed = await client.get("/v1/payments", params={"limit": 1})
        review = await client.post("/v1/payments/wd_any/review", json={"decision": "approve"})
        audit = await client.get("/v1/ops/audit-log")

    assert listed.status_code == 200, listed.text
    assert_problem(review, 403, "forbidden")
    assert_problem(audit, 403, "forbidden")


async def test_unknown_and_revoked_keys_are_refused(
    stack: Stack, client_with_key: ClientWithKey
) -> None:
    async with client_with_key("payments") as (client, key_id):
        assert (await client.get("/v1/payments")).status_code == 200
        await keys.revoke_key(stack.database_url, key_id)
        after_revoke = await answer_once_revocation_heard(client, "/v1/payments")
        unknown = await client.get(
            "/v1/payments", headers={"Authorization": "Bearer sk_live_nobody"}
        )

    assert_problem(after_revoke, 401, "unauthorized")
    assert_problem(unknown, 401, "unauthorized")


async def test_ops_only_key_acts_and_reads_as_an_operator_but_moves_no_money(
    api: httpx.AsyncClient, client_with_key: ClientWithKey
) -> None:
    customer = await create_customer(api)
    reason = {"reason": "chargeback pattern"}
    deposit = {
        "customer_id": customer["id"],
        "amount": 1_000,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    async with client_with_key("ops") as (ops, _key_id):
        reads = [
            await ops.get(path)
            for path in (
                "/v1/merchant",
                "/v1/payments",
                f"/v1/customers/{customer['id']}",
                f"/v1/customers/{customer['id']}/balances",
                "/v1/disputes",
                "/v1/events",
                "/v1/ops/audit-log",
            )
        ]
        blocked = await ops.post(f"/v1/customers/{customer['id']}/block", json=reason)
        unblocked = await ops.post(f"/v1/customers/{customer['id']}/unblock", json=reason)
        merchant = await ops.patch("/v1/merchant", json={})
        moved = await post_payment(ops, "/v1/deposits", deposit)
        new_customer = await ops.post(
            "/v1/customers",
            json={
                "external_id": "x",
                "full_name": "A B",
                "birth_date": "1990-01-01",
                "country": "DE",
            },
        )

    assert [r.status_code for r in reads] == [200] * len(reads), [r.text for r in reads]
    assert (blocked.status_code, blocked.json()["status"]) == (200, "blocked")
    assert (unblocked.status_code, unblocked.json()["status"]) == (200, "active")
    assert merchant.status_code == 200, merchant.text
    assert_problem(moved, 403, "forbidden")
    assert_problem(new_customer, 403, "forbidden")


async def test_ops_key_review_is_in_the_audit_log(
    api: httpx.AsyncClient, client_with_key: ClientWithKey
) -> None:
    customer = await funded_customer(api, 600_000)
    body = {"customer_id": customer["id"], "amount": 500_000, "currency": "EUR"}
    created = await post_payment(api, "/v1/withdrawals", {**body, "destination": "pm_ok"})
    assert created.status_code == 202, created.text
    payment_id = created.json()["id"]
    await wait_status(api, payment_id, {"requires_review"})

    async with client_with_key("ops") as (ops, key_id):  # an operator's key moves no money
        review = {"decision": "reject", "reason": "source of funds unclear"}
        reviewed = await ops.post(f"/v1/payments/{payment_id}/review", json=review)
        assert reviewed.status_code == 200, reviewed.text
        audit = await ops.get("/v1/ops/audit-log", params={"limit": 100})

    assert audit.status_code == 200, audit.text
    entries = [e for e in audit.json()["data"] if e["target"] == payment_id]
    assert [(e["actor"], e["action"]) for e in entries] == [(key_id, "payment.review")]
    assert entries[0]["detail"]["decision"] == "reject"
    assert entries[0]["detail"]["reason"] == "source of funds unclear"
    done = await wait_terminal(api, payment_id)
    assert (done["status"], done["failure_code"]) == ("failed", "review_rejected")


async def test_audit_log_pages_newest_first(stack: Stack, ops_api: httpx.AsyncClient) -> None:
    async with await open_pool(stack.database_url, 1, 1) as pool:
        store = Store(pool)
        first = await store.record_ops_action(
            "mer_dev", "key_test", "payment.review", "wd_first", {}
        )
        second = await store.record_ops_action(
            "mer_dev", "key_test", "payment.review", "wd_second", {}
        )

    page = await ops_api.get("/v1/ops/audit-log", params={"limit": 1})
    assert page.status_code == 200, page.text
    top: dict[str, Any] = page.json()
    assert ([e["id"] for e in top["data"]], top["has_more"]) == ([second.id], True)
    after = await ops_api.get("/v1/ops/audit-log", params={"limit": 1, "starting_after": second.id})
    assert [e["id"] for e in after.json()["data"]] == [first.id]
