"""Provider accounts per merchant (issue 23, item 5): the built-in sandbox accounts, a merchant's
own account with its own credentials and webhook secret, routing over a merchant's accounts,
and webhooks verified by the account they arrive for."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from temporalio.client import ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from paysaga.settings import DEV_PLATFORM_KEY
from providers.webhooks import SIGNATURE_HEADER, sign
from tests.api.test_reconciliation import mismatches_for
from tests.stack import (
    Stack,
    create_customer,
    post_payment,
    psp_operations,
    wait_terminal,
    worker_schedule,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

BUILTIN = ["sandbox-cards", "sandbox-bank"]


def client(stack: Stack, key: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30)


async def new_merchant(stack: Stack) -> tuple[str, httpx.AsyncClient]:
    """A merchant created now (its routing is its own: other tests' deposits never see it) and a
    client with its `payments` and `ops` key."""
    async with client(stack, DEV_PLATFORM_KEY) as platform:
        created = await platform.post("/v1/merchants", json={"name": f"psp-{uuid.uuid4()}"})
        assert created.status_code == 201, created.text
        merchant_id = created.json()["id"]
        key = await platform.post(
            f"/v1/merchants/{merchant_id}/api-keys", json={"scopes": ["payments", "ops"]}
        )
        assert key.status_code == 201, key.text
    return merchant_id, client(stack, key.json()["secret"])


@pytest_asyncio.fixture(loop_scope="session")
async def merchant(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    _, books = await new_merchant(stack)
    async with books:
        yield books


async def open_own_account(
    stack: Stack, books: httpx.AsyncClient, name: str, **fields: Any
) -> tuple[dict[str, Any], str]:
    """A merchant's own sandbox account, opened at the sandbox PSP too; with its webhook secret."""
    webhook_secret = f"whsec_{secrets.token_hex(16)}"
    body = {
        "adapter": "sandbox",
        "name": name,
        "credentials": {"api_key": f"sk_own_{secrets.token_hex(8)}"},
        "webhook_secret": webhook_secret,
        **fields,
    }
    created = await books.post("/v1/providers", json=body)
    assert created.status_code == 201, created.text
    account: dict[str, Any] = created.json()
    async with httpx.AsyncClient(timeout=30) as psp:
        opened = await psp.post(
            f"{stack.psp.url}/_sandbox/accounts",
            json={"id": account["id"], "webhook_secret": webhook_secret},
        )
    assert opened.status_code == 201, opened.text
    return account, webhook_secret


async def deposit(books: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    customer = await create_customer(books)
    body = {
        "customer_id": customer["id"],
        "amount": 1_500,
        "currency": "EUR",
        "payment_method": "pm_ok",
        **fields,
    }
    response = await post_payment(books, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    return await wait_terminal(books, response.json()["id"])


def operation_event(account_id: str, payment: dict[str, Any], status: str = "succeeded") -> bytes:
    """A provider event about `payment`'s charge, in the sandbox's format."""
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": f"charge.{status}",
            "created": int(time.time()),
            "sequence": 99,
            "data": {
                "operation": {
                    "id": f"op_{uuid.uuid4().hex}",
                    "provider": account_id,
                    "kind": "charge",
                    "idempotency_key": f"{payment['id']}:charge",
                    "reference": payment["id"],
                    "status": status,
                    "amount": payment["amount"],
                    "currency": payment["currency"],
                }
            },
        }
    ).encode()


def signed(secret: str, body: bytes) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        "Content-Type": "application/json",
    }


async def test_every_merchant_has_the_sandbox_accounts_one_created_later_included(
    ops_api: httpx.AsyncClient, merchant: httpx.AsyncClient
) -> None:
    for books in (ops_api, merchant):
        listed = await books.get("/v1/providers")
        assert listed.status_code == 200, listed.text
        # (the development merchant may have own accounts of other tests: disabled ones)
        accounts = [a for a in listed.json()["data"] if a["builtin"] or a["enabled"]]
        assert [a["id"] for a in accounts] == BUILTIN
        assert [(a["priority"], a["enabled"], a["builtin"]) for a in accounts] == [
            (1, True, True),
            (2, True, True),
        ]
        assert all(a["health"]["state"] == "closed" for a in accounts)


async def test_provider_accounts_need_an_ops_key(api: httpx.AsyncClient) -> None:
    listed = await api.get("/v1/providers")
    created = await api.post("/v1/providers", json={"adapter": "sandbox", "name": "x"})
    changed = await api.patch("/v1/providers/sandbox-cards", json={"enabled": False})

    assert [r.status_code for r in (listed, created, changed)] == [403, 403, 403]


async def test_accounts_an_adapter_cannot_serve_are_refused_when_created(
    merchant: httpx.AsyncClient,
) -> None:
    base = {"credentials": {}, "webhook_secret": "whsec_0123456789abcdef"}
    no_adapter = await merchant.post(
        "/v1/providers", json={**base, "adapter": "no-such-psp", "name": "a"}
    )
    no_method = await merchant.post(
        "/v1/providers", json={**base, "adapter": "sandbox", "name": "b", "methods": ["crypto"]}
    )
    builtin_name = await merchant.post(
        "/v1/providers", json={**base, "adapter": "sandbox", "name": "sandbox-cards"}
    )
    builtin_credentials = await merchant.patch(
        "/v1/providers/sandbox-cards", json={"credentials": {"api_key": "x"}}
    )
    unknown = await merchant.patch("/v1/providers/pa_nobody", json={"enabled": False})

    assert (no_adapter.status_code, no_adapter.json()["code"]) == (422, "provider_misconfigured")
    assert (no_method.status_code, no_method.json()["code"]) == (422, "provider_misconfigured")
    assert (builtin_name.status_code, builtin_name.json()["code"]) == (409, "provider_exists")
    assert builtin_credentials.status_code == 422
    assert (unknown.status_code, unknown.json()["code"]) == (404, "provider_not_found")
    assert [a["id"] for a in (await merchant.get("/v1/providers")).json()["data"]] == BUILTIN


async def test_an_own_account_takes_the_merchants_deposits_and_refunds_with_its_own_secrets(
    stack: Stack,
) -> None:
    merchant_id, books = await new_merchant(stack)
    async with books:
        account, webhook_secret = await open_own_account(stack, books, "own-psp", priority=1)
        listed = (await books.get("/v1/providers")).json()["data"]

        paid = await deposit(books)
        refund = await post_payment(books, f"/v1/payments/{paid['id']}/refunds", {"amount": 500})
        assert refund.status_code == 202, refund.text
        refunded = await _wait_refund(books, paid["id"], refund.json()["id"])

    assert account["id"].startswith("pa_")
    assert (account["adapter"], account["name"], account["builtin"]) == (
        "sandbox",
        "own-psp",
        False,
    )
    assert "credentials" not in account and "webhook_secret" not in account
    assert [a["id"] for a in listed] == [account["id"], *BUILTIN]
    # The deposit went to the merchant's own account, at the PSP under that account.
    assert (paid["status"], paid["provider"]) == ("succeeded", account["id"])
    charges = [
        op for op in psp_operations(stack, account["id"], paid["id"]) if op["kind"] == "charge"
    ]
    assert [op["status"] for op in charges] == ["succeeded"]
    assert psp_operations(stack, "sandbox-cards", paid["id"]) == []
    assert refunded["status"] == "succeeded"
    refunds = [
        op for op in psp_operations(stack, account["id"], paid["id"]) if op["kind"] == "refund"
    ]
    assert [(op["status"], op["amount"]) for op in refunds] == [("succeeded", 500)]
    # Its webhooks arrived at /v1/webhooks/providers/<its id>, verified with its own secret.
    async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
        seen = await conn.execute(
            "SELECT count(*) FROM provider_webhook_events WHERE provider = %s AND payment_id = %s",
            (account["id"], paid["id"]),
        )
        row = await seen.fetchone()
        sealed = await conn.execute(
            "SELECT merchant_id, credentials_sealed, webhook_secret_sealed FROM provider_accounts"
            " WHERE id = %s",
            (account["id"],),
        )
        stored = await sealed.fetchone()
    assert row is not None and row[0] >= 1
    # Sealed at rest: neither the credentials nor the secret are readable in the database.
    assert stored is not None and stored[0] == merchant_id
    assert webhook_secret not in stored[2] and "sk_own_" not in stored[1]


async def _wait_refund(books: httpx.AsyncClient, payment_id: str, refund_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        listed = (await books.get(f"/v1/payments/{payment_id}/refunds")).json()["data"]
        refund: dict[str, Any] = next(r for r in listed if r["id"] == refund_id)
        if refund["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return refund
        await asyncio.sleep(0.1)


async def test_a_webhook_is_verified_by_its_accounts_secret_and_reaches_its_merchant_only(
    stack: Stack,
) -> None:
    _, books_a = await new_merchant(stack)
    _, books_b = await new_merchant(stack)
    async with books_a, books_b:
        account_a, secret_a = await open_own_account(stack, books_a, "psp-a", priority=1)
        account_b, secret_b = await open_own_account(stack, books_b, "psp-b", priority=1)
        paid_b = await deposit(books_b)

        webhooks = f"{stack.api_url}/v1/webhooks/providers"
        async with httpx.AsyncClient(timeout=30) as psp:
            event = operation_event(account_a["id"], paid_b)
            # Merchant B's secret on merchant A's account: refused, whatever the event says.
            wrong_secret = await psp.post(
                f"{webhooks}/{account_a['id']}", content=event, headers=signed(secret_b, event)
            )
            # A's own secret, naming B's payment: A's account reaches A's payments only.
            foreign = await psp.post(
                f"{webhooks}/{account_a['id']}", content=event, headers=signed(secret_a, event)
            )
            nobody = await psp.post(
                f"{webhooks}/pa_{'0' * 24}", content=event, headers=signed(secret_a, event)
            )
            own = operation_event(account_b["id"], paid_b)
            right = await psp.post(
                f"{webhooks}/{account_b['id']}", content=own, headers=signed(secret_b, own)
            )

    assert wrong_secret.status_code == 401, wrong_secret.text
    assert (foreign.status_code, foreign.json()["code"]) == (404, "payment_not_found")
    assert (nobody.status_code, nobody.json()["code"]) == (404, "provider_not_found")
    assert right.status_code == 200, right.text


async def test_a_disabled_account_takes_no_new_deposit_and_priorities_move_built_in_ones(
    stack: Stack,
) -> None:
    _, books = await new_merchant(stack)
    async with books:
        account, _ = await open_own_account(stack, books, "own-first", priority=1)
        disabled = await books.patch(f"/v1/providers/{account['id']}", json={"enabled": False})
        to_bank = await deposit(books)
        moved = await books.patch("/v1/providers/sandbox-cards", json={"priority": 5})
        listed = (await books.get("/v1/providers")).json()["data"]
        after_move = await deposit(books)
        named = await deposit(books, provider="sandbox-cards")
        refused = await post_payment(
            books,
            "/v1/deposits",
            {
                "customer_id": (await create_customer(books))["id"],
                "amount": 100,
                "currency": "EUR",
                "payment_method": "pm_ok",
                "provider": account["name"],
            },
        )

    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert (to_bank["status"], to_bank["provider"]) == ("succeeded", "sandbox-cards")
    assert moved.status_code == 200 and moved.json()["priority"] == 5
    assert [(a["id"], a["enabled"]) for a in listed] == [
        (account["id"], False),
        ("sandbox-bank", True),
        ("sandbox-cards", True),
    ]
    assert (after_move["status"], after_move["provider"]) == ("succeeded", "sandbox-bank")
    assert (named["status"], named["provider"]) == ("succeeded", "sandbox-cards")
    assert refused.status_code == 422, refused.text


async def test_an_own_account_is_reconciled_against_its_own_settlement_report(
    stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    _, books = await new_merchant(stack)
    async with books:
        account, _ = await open_own_account(stack, books, "reconciled", priority=1)
        # An account the PSP does not know (its reports fail): it must not hold back the other.
        broken = await books.post(
            "/v1/providers",
            json={
                "adapter": "sandbox",
                "name": "unknown-at-the-psp",
                "credentials": {},
                "webhook_secret": "whsec_0123456789abcdef",
                "priority": 1000,
            },
        )
        assert broken.status_code == 201, broken.text
        disabled = await books.patch(
            f"/v1/providers/{broken.json()['id']}", json={"enabled": False}
        )
        assert disabled.status_code == 200, disabled.text
        paid = await deposit(books)
        # The account's books at the PSP say it charged 42.42 EUR more than the ledger knows.
        async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
            planted = await psp.post(
                f"/{account['id']}/_sandbox/settlement-adjustments",
                json={
                    "kind": "charge",
                    "reference": paid["id"],
                    "amount": 4_242,
                    "currency": "EUR",
                },
            )
        assert planted.status_code == 201, planted.text
        schedule = await worker_schedule(
            temporal_env.client, f"paysaga-reconciliation-{stack.task_queue}"
        )
        # After a run in flight (another test's, or the schedule's own), not skipped as the
        # schedule's policy would: a run of the merchants' own accounts may be retrying one.
        await schedule.trigger(overlap=ScheduleOverlapPolicy.BUFFER_ONE)
        found = await mismatches_for(books, paid["id"])

    assert paid["provider"] == account["id"]
    # The provider's amount is the deposit's and the planted line's; the ledger knows the deposit.
    assert [(m["provider"], m["provider_amount"], m["ledger_amount"]) for m in found] == [
        (account["id"], 1_500 + 4_242, 1_500)
    ]
