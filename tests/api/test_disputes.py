"""Disputes through the HTTP API on the test stack: planted at the sandbox PSP as a card network
opens them, reported by its signed webhooks, answered by the merchant's operators.

After every test the books are clean: the ledger audit (with the service's receivable and
dispute checks) passes, and each dispute's ledger bookings match the provider's settlement lines
one by one (the withdrawal: the `dispute` and `dispute_fee` lines; the reinstatement: the
`dispute_reversal` line), as the deposit's net does.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from paysaga.audit import audit_books
from paysaga.reconciliation import ReconciliationBooks, provider_nets
from paysaga.settings import DEV_MERCHANT_2_KEY, DEV_OPS_KEY, Settings
from providers.base import SettlementLine
from providers.webhooks import SIGNATURE_HEADER, sign
from tests.stack import (
    Stack,
    balance_of,
    crash_worker,
    create_customer,
    post_payment,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

FINAL = {"won", "lost"}


async def deposit_of(api: httpx.AsyncClient, amount: int, method: str = "pm_ok") -> dict[str, Any]:
    """A succeeded deposit of `amount` into a new customer's wallet."""
    customer = await create_customer(api)
    body = {"customer_id": customer["id"], "amount": amount, "currency": "EUR"}
    response = await post_payment(api, "/v1/deposits", {**body, "payment_method": method})
    assert response.status_code == 202, response.text
    deposit = await wait_terminal(api, response.json()["id"])
    assert deposit["status"] == "succeeded", deposit
    return deposit


async def plant(
    stack: Stack, deposit: dict[str, Any], amount: int, outcome: str, **extra: Any
) -> dict[str, Any]:
    """A card network opens a dispute of the deposit at its provider (sandbox only)."""
    async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
        response = await psp.post(
            f"/{deposit['provider']}/_sandbox/disputes",
            json={"reference": deposit["id"], "amount": amount, "outcome": outcome, **extra},
        )
    assert response.status_code == 201, response.text
    planted: dict[str, Any] = response.json()
    return planted


async def dispute_of(
    api: httpx.AsyncClient, payment_id: str, statuses: set[str] | None = None, timeout: float = 60
) -> dict[str, Any]:
    """The deposit's dispute once the API shows it (in one of `statuses`, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get("/v1/disputes", params={"payment_id": payment_id})
        assert response.status_code == 200, response.text
        found = response.json()["data"]
        if found and (statuses is None or found[0]["status"] in statuses):
            assert len(found) == 1, found
            dispute: dict[str, Any] = found[0]
            return dispute
        assert time.monotonic() < deadline, f"no dispute of {payment_id} in {statuses}: {found}"
        await asyncio.sleep(0.05)


async def opened(api: httpx.AsyncClient, payment_id: str) -> dict[str, Any]:
    """The dispute once its withdrawal is booked and announced (`dispute.created`)."""
    dispute = await dispute_of(api, payment_id)
    await events_of(api, dispute["id"], "dispute.created")
    found: dict[str, Any] = (await api.get(f"/v1/disputes/{dispute['id']}")).json()
    return found


async def events_of(
    api: httpx.AsyncClient, dispute_id: str, last: str | None = None, timeout: float = 30
) -> list[str]:
    """The types of the dispute's events in the merchant's feed (once `last` is among them)."""
    deadline = time.monotonic() + timeout
    while True:
        types, after = [], 0
        while True:
            page = (await api.get("/v1/events", params={"after": after, "limit": 100})).json()
            types += [
                e["type"] for e in page["data"] if e["data"]["object"].get("id") == dispute_id
            ]
            if not page["has_more"]:
                break
            after = page["data"][-1]["sequence"]
        if last is None or last in types:
            return types
        assert time.monotonic() < deadline, f"{dispute_id}: {types}, no {last}"
        await asyncio.sleep(0.1)


async def dispute_bookings(
    db_pool: AsyncConnectionPool, deposit: dict[str, Any], dispute_id: str
) -> dict[str, int]:
    """The dispute's ledger transactions by step, each with what it moved on provider clearing."""
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT split_part(t.idempotency_key, ':', 4), SUM(e.amount)"
            " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
            " JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'provider_clearing'"
            " WHERE t.idempotency_key LIKE %s GROUP BY t.id ORDER BY t.id",
            (f"{deposit['id']}:dispute:{dispute_id}:%",),
        )
        rows = await cur.fetchall()
    steps = [step for step, _ in rows]
    assert len(steps) == len(set(steps)), steps  # each booking once
    return {step: int(amount) for step, amount in rows}


async def assert_books_clean(
    stack: Stack, db_pool: AsyncConnectionPool, deposit: dict[str, Any], dispute: dict[str, Any]
) -> None:
    """The audit passes; the dispute's bookings match the provider's lines one by one, and the
    deposit nets to what the provider's settlement report says."""
    report = await audit_books(db_pool)
    assert report.ok, report.format()
    provider = deposit["provider"]
    async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
        rows = (await psp.get(f"/{provider}/settlement-report")).json()["data"]
    mine = [r for r in rows if r["reference"] == deposit["id"]]
    lines = {r["kind"]: r["amount"] for r in mine if r["kind"].startswith("dispute")}
    bookings = await dispute_bookings(db_pool, deposit, dispute["id"])
    assert bookings.get("withdraw") == lines["dispute"] + lines.get("dispute_fee", 0)
    assert bookings.get("reinstate") == (
        None if "dispute_reversal" not in lines else -lines["dispute_reversal"]
    )
    settled = [
        SettlementLine(r["kind"], r["reference"], r["amount"], r["currency"], r["id"]) for r in mine
    ]
    key = (deposit["id"], deposit["currency"])
    ours = (await ReconciliationBooks(db_pool).ledger_nets(provider)).get(key, 0)
    assert provider_nets(settled).get(key, 0) == ours


async def test_dispute_won_with_evidence(
    api: httpx.AsyncClient,
    ops_api: httpx.AsyncClient,
    stack: Stack,
    db_pool: AsyncConnectionPool,
    temporal_env: WorkflowEnvironment,
) -> None:
    deposit = await deposit_of(api, 10_000)
    planted = await plant(stack, deposit, 3_000, "won", fee=1_500, reason="product_not_received")

    dispute = await opened(api, deposit["id"])
    assert dispute["id"].startswith("dsp_")
    assert {k: dispute[k] for k in ("payment_id", "customer_id", "amount", "currency")} == {
        "payment_id": deposit["id"],
        "customer_id": deposit["customer_id"],
        "amount": 3_000,
        "currency": "EUR",
    }
    assert (dispute["fee"], dispute["reason"], dispute["status"]) == (
        1_500,
        "product_not_received",
        "needs_response",
    )
    assert dispute["receivable"] == 0
    assert dispute["evidence_due_by"].startswith(planted["evidence_due_by"][:19])
    balance = await balance_of(api, deposit["customer_id"], "EUR")
    assert balance["available"] == 7_000

    refused = await api.post(f"/v1/disputes/{dispute['id']}/evidence", json={"text": "receipt"})
    assert refused.status_code == 403  # an operator's call
    answered = await ops_api.post(
        f"/v1/disputes/{dispute['id']}/evidence", json={"text": "signed delivery receipt"}
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] in ("under_review", "won")

    won = await dispute_of(api, deposit["id"], FINAL)
    assert won["status"] == "won"
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["available"] == 10_000
    assert await events_of(api, dispute["id"], "dispute.won") == [
        "dispute.created",
        "dispute.under_review",
        "dispute.won",
    ]
    again = await ops_api.post(f"/v1/disputes/{dispute['id']}/accept")
    assert again.status_code == 409 and again.json()["code"] == "dispute_not_open"
    audit = (await ops_api.get("/v1/ops/audit-log", params={"limit": 100})).json()["data"]
    assert "dispute.evidence" in {e["action"] for e in audit if e["target"] == dispute["id"]}
    query = (
        f'DisputeStatus="won" AND MerchantId="mer_dev" AND CustomerId="{deposit["customer_id"]}"'
        ' AND Provider="sandbox-cards" AND AmountMinor=3000'
    )
    assert await workflows_found(temporal_env.client, query) == {dispute["id"]}
    await assert_books_clean(stack, db_pool, deposit, dispute)


async def workflows_found(client: Client, query: str) -> set[str]:
    """The workflow ids Temporal's visibility lists for `query`, once it lists any."""
    deadline = time.monotonic() + 30
    while True:
        found = {wf.id async for wf in client.list_workflows(query)}
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_dispute_lost_with_evidence(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 10_000)
    await plant(stack, deposit, 10_000, "lost", fee=2_000)
    dispute = await opened(api, deposit["id"])

    answered = await ops_api.post(
        f"/v1/disputes/{dispute['id']}/evidence", json={"text": "it was the cardholder"}
    )
    assert answered.status_code == 200, answered.text

    lost = await dispute_of(api, deposit["id"], FINAL)
    assert lost["status"] == "lost"
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 0
    second = await ops_api.post(f"/v1/disputes/{dispute['id']}/evidence", json={"text": "more"})
    assert second.status_code == 409 and second.json()["code"] == "dispute_not_open"
    await assert_books_clean(stack, db_pool, deposit, dispute)


async def test_dispute_accepted_is_lost_at_once(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000)
    await plant(stack, deposit, 5_000, "won", fee=300)
    dispute = await opened(api, deposit["id"])

    accepted = await ops_api.post(f"/v1/disputes/{dispute['id']}/accept")

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "lost"
    assert await events_of(api, dispute["id"], "dispute.lost") == [
        "dispute.created",
        "dispute.lost",
    ]
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 0
    await assert_books_clean(stack, db_pool, deposit, dispute)


async def test_no_answer_by_the_due_date_is_an_acceptance(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 4_000)
    await plant(stack, deposit, 1_000, "won", fee=100, evidence_due_in_seconds=2)
    dispute = await opened(api, deposit["id"])
    assert dispute["status"] == "needs_response"

    lost = await dispute_of(api, deposit["id"], FINAL, timeout=60)

    assert lost["status"] == "lost"
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 3_000
    await assert_books_clean(stack, db_pool, deposit, dispute)


async def test_dispute_on_a_spent_wallet_is_a_debt_repaid_by_the_next_deposit(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 10_000)
    customer = deposit["customer_id"]
    body = {"customer_id": customer, "amount": 9_000, "currency": "EUR", "destination": "pm_ok"}
    paid_out = await post_payment(api, "/v1/withdrawals", body)
    assert (await wait_terminal(api, paid_out.json()["id"]))["status"] == "succeeded"

    await plant(stack, deposit, 10_000, "lost", fee=1_000)
    dispute = await opened(api, deposit["id"])

    assert dispute["receivable"] == 9_000
    balances = (await api.get(f"/v1/customers/{customer}/balances")).json()["data"]
    assert balances == [
        {"currency": "EUR", "posted": 0, "held": 0, "available": 0, "receivable": 9_000}
    ]
    refused = await post_payment(api, "/v1/withdrawals", {**body, "amount": 1})
    assert refused.status_code == 202, refused.text
    failed = await wait_terminal(api, refused.json()["id"])
    assert (failed["status"], failed["failure_code"]) == ("failed", "customer_in_debt")

    repaying = await post_payment(
        api,
        "/v1/deposits",
        {"customer_id": customer, "amount": 12_000, "currency": "EUR", "payment_method": "pm_ok"},
    )
    assert (await wait_terminal(api, repaying.json()["id"]))["status"] == "succeeded"
    balances = (await api.get(f"/v1/customers/{customer}/balances")).json()["data"]
    assert balances == [
        {"currency": "EUR", "posted": 3_000, "held": 0, "available": 3_000, "receivable": 0}
    ]
    withdrawn = await post_payment(api, "/v1/withdrawals", {**body, "amount": 3_000})
    assert (await wait_terminal(api, withdrawn.json()["id"]))["status"] == "succeeded"

    accepted = await ops_api.post(f"/v1/disputes/{dispute['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["receivable"] == 9_000  # what the wallet could not cover, for good
    await assert_books_clean(stack, db_pool, deposit, dispute)


async def test_duplicate_and_late_dispute_webhooks_change_nothing_twice(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    # pm_duplicate_webhook: each dispute event twice, then a stale `dispute.created` after the
    # verdict (its own event id, sequence 1).
    deposit = await deposit_of(api, 6_000, method="pm_duplicate_webhook")
    await plant(stack, deposit, 6_000, "won", fee=500)
    dispute = await opened(api, deposit["id"])
    answered = await ops_api.post(f"/v1/disputes/{dispute['id']}/evidence", json={"text": "ok"})
    assert answered.status_code == 200, answered.text
    assert (await dispute_of(api, deposit["id"], FINAL))["status"] == "won"

    await asyncio.sleep(2.0)  # the stale event comes a moment after the verdict
    assert await events_of(api, dispute["id"]) == [
        "dispute.created",
        "dispute.under_review",
        "dispute.won",
    ]
    assert (await dispute_of(api, deposit["id"]))["status"] == "won"
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 6_000
    await assert_books_clean(stack, db_pool, deposit, dispute)


def signed(provider: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A provider event signed as the provider signs it (the dev stack's public secret)."""
    body = json.dumps(event).encode()
    secret = Settings(environment="development").psp_webhook_secrets[provider]
    return body, {SIGNATURE_HEADER: sign(secret, body, int(time.time()))}


async def test_a_verdict_before_its_created_event_starts_the_dispute_and_nothing_moves_back(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    # The provider's dispute (no fee, so that nothing settles for it while won) as its events
    # show it; the verdict arrives first, `dispute.created` after it.
    deposit = await deposit_of(api, 8_000)
    provider = deposit["provider"]
    shown = {
        "id": f"dp_{uuid.uuid4().hex[:24]}",
        "provider": provider,
        "reference": deposit["id"],
        "charge_id": "op_x",
        "charge_idempotency_key": f"{deposit['id']}:charge",
        "amount": 2_500,
        "currency": "EUR",
        "fee": 0,
        "reason": "fraudulent",
        "evidence_due_by": "2030-01-01T00:00:00+00:00",
    }
    url = f"/v1/webhooks/providers/{provider}"
    won = {"id": f"evt_{uuid.uuid4().hex}", "type": "dispute.won", "created": int(time.time())}
    won |= {"sequence": 2, "data": {"dispute": {**shown, "status": "won"}}}
    created = {**won, "id": f"evt_{uuid.uuid4().hex}", "type": "dispute.created", "sequence": 1}
    created["data"] = {"dispute": {**shown, "status": "needs_response"}}

    body, headers = signed(provider, won)
    assert (await api.post(url, content=body, headers=headers)).status_code == 200
    dispute = await dispute_of(api, deposit["id"], FINAL)
    body, headers = signed(provider, created)
    late = await api.post(url, content=body, headers=headers)
    again = await api.post(url, content=body, headers=headers)

    assert late.status_code == 200 and again.json()["duplicate"] is True
    assert dispute["status"] == "won"
    await asyncio.sleep(0.5)
    assert (await dispute_of(api, deposit["id"]))["status"] == "won"
    assert await events_of(api, dispute["id"]) == ["dispute.created", "dispute.won"]
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 8_000
    assert await dispute_bookings(db_pool, deposit, dispute["id"]) == {
        "withdraw": 2_500,
        "reinstate": -2_500,
    }
    report = await audit_books(db_pool)
    assert report.ok, report.format()


async def test_worker_killed_during_a_dispute_withdraws_and_reinstates_once(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 7_000)
    await plant(stack, deposit, 7_000, "won", fee=700)
    await crash_worker(stack)  # the created event lands while it is dead
    dispute = await opened(api, deposit["id"])

    answered = await ops_api.post(f"/v1/disputes/{dispute['id']}/evidence", json={"text": "ok"})
    assert answered.status_code == 200, answered.text
    await crash_worker(stack)  # the verdict lands while it is dead
    assert (await dispute_of(api, deposit["id"], FINAL))["status"] == "won"

    assert await dispute_bookings(db_pool, deposit, dispute["id"]) == {
        "withdraw": 7_700,
        "reinstate": -7_000,
    }
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 7_000
    await assert_books_clean(stack, db_pool, deposit, dispute)


async def test_refund_of_a_disputed_deposit_is_refused(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    deposit = await deposit_of(api, 5_000)
    refunded = await post_payment(api, f"/v1/payments/{deposit['id']}/refunds", {"amount": 1_000})
    assert refunded.status_code == 202, refunded.text
    deadline = time.monotonic() + 60
    while (await api.get(f"/v1/refunds/{refunded.json()['id']}")).json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    # What was refunded cannot be disputed (the provider refuses it), and is never withdrawn.
    async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
        too_much = await psp.post(
            f"/{deposit['provider']}/_sandbox/disputes",
            json={"reference": deposit["id"], "amount": 5_000, "outcome": "won"},
        )
    assert too_much.status_code == 422 and too_much.json()["error"] == "amount_exceeds_charge"
    await plant(stack, deposit, 4_000, "lost")
    dispute = await opened(api, deposit["id"])

    refusal = await post_payment(api, f"/v1/payments/{deposit['id']}/refunds", {"amount": 500})

    assert refusal.status_code == 409 and refusal.json()["code"] == "payment_not_refundable"
    assert (await balance_of(api, deposit["customer_id"], "EUR"))["posted"] == 0
    assert (await ops_api.post(f"/v1/disputes/{dispute['id']}/accept")).status_code == 200
    await assert_books_clean(stack, db_pool, deposit, dispute)


async def test_list_disputes_filters_and_pages_and_hides_other_merchants(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    deposits = [await deposit_of(api, 1_000) for _ in range(2)]
    for deposit in deposits:
        await plant(stack, deposit, 500, "lost")
    ids = [(await opened(api, d["id"]))["id"] for d in deposits]

    first = (await api.get("/v1/disputes", params={"limit": 1})).json()
    after = first["data"][0]["id"]
    second = (await api.get("/v1/disputes", params={"limit": 1, "starting_after": after})).json()
    open_ones = (await api.get("/v1/disputes", params={"status": "needs_response"})).json()
    missing = await api.get("/v1/disputes", params={"starting_after": "dsp_missing"})

    assert first["has_more"] and first["data"][0]["id"] == ids[1]
    assert second["data"][0]["id"] == ids[0]
    assert set(ids) <= {d["id"] for d in open_ones["data"]}
    assert missing.status_code == 404 and missing.json()["code"] == "cursor_not_found"
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_2_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as other:
        theirs = (await other.get("/v1/disputes", params={"limit": 100})).json()["data"]
        one = await other.get(f"/v1/disputes/{ids[0]}")
    assert not set(ids) & {d["id"] for d in theirs}
    assert one.status_code == 404
    async with httpx.AsyncClient(base_url=stack.api_url) as ops:  # end them: nothing left open
        for dispute_id in ids:
            accepted = await ops.post(
                f"/v1/disputes/{dispute_id}/accept",
                headers={"Authorization": f"Bearer {DEV_OPS_KEY}"},
            )
            assert accepted.status_code == 200, accepted.text


async def test_dispute_of_a_failed_deposit_takes_nothing_from_the_customer(
    api: httpx.AsyncClient, stack: Stack, db_pool: AsyncConnectionPool
) -> None:
    # The customer's wallet holds 5,000 from a succeeded deposit; another deposit failed (the
    # provider declined it), yet the provider reports a chargeback of it, with its fee.
    funded = await deposit_of(api, 5_000)
    customer = funded["customer_id"]
    body = {"customer_id": customer, "amount": 8_000, "currency": "EUR"}
    response = await post_payment(api, "/v1/deposits", {**body, "payment_method": "pm_decline"})
    assert response.status_code == 202, response.text
    failed = await wait_terminal(api, response.json()["id"])
    assert failed["status"] == "failed", failed
    provider = failed["provider"]
    shown = {
        "id": f"dp_{uuid.uuid4().hex[:24]}",
        "provider": provider,
        "reference": failed["id"],
        "charge_id": "op_x",
        "charge_idempotency_key": f"{failed['id']}:charge",
        "amount": 8_000,
        "currency": "EUR",
        "fee": 400,
        "reason": "fraudulent",
        "evidence_due_by": "2030-01-01T00:00:00+00:00",
        "status": "needs_response",
    }
    created = {"id": f"evt_{uuid.uuid4().hex}", "type": "dispute.created", "sequence": 1}
    created |= {"created": int(time.time()), "data": {"dispute": shown}}
    body_bytes, headers = signed(provider, created)
    delivered = await api.post(
        f"/v1/webhooks/providers/{provider}", content=body_bytes, headers=headers
    )
    assert delivered.status_code == 200, delivered.text

    dispute = await opened(api, failed["id"])

    assert (dispute["amount"], dispute["fee"], dispute["receivable"]) == (8_000, 400, 0)
    balances = (await api.get(f"/v1/customers/{customer}/balances")).json()["data"]
    assert balances == [
        {"currency": "EUR", "posted": 5_000, "held": 0, "available": 5_000, "receivable": 0}
    ]
    # The merchant bears the chargeback: the amount and the fee against provider clearing.
    assert await dispute_bookings(db_pool, failed, dispute["id"]) == {"withdraw": 8_400}
    lost = {**created, "id": f"evt_{uuid.uuid4().hex}", "type": "dispute.lost", "sequence": 2}
    lost["data"] = {"dispute": {**shown, "status": "lost"}}
    body_bytes, headers = signed(provider, lost)
    delivered = await api.post(
        f"/v1/webhooks/providers/{provider}", content=body_bytes, headers=headers
    )
    assert delivered.status_code == 200, delivered.text
    assert (await dispute_of(api, failed["id"], FINAL))["status"] == "lost"
    assert (await balance_of(api, customer, "EUR"))["posted"] == 5_000
    report = await audit_books(db_pool)
    assert report.ok, report.format()
