"""Every payment ends in a clear state, through the real stack: rejections, cancels, intervention."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from tests.api.test_transfers import quote, transfer
from tests.api.test_withdrawals import balance, payouts, withdraw
from tests.stack import (
    Stack,
    balance_of,
    create_customer,
    funded_customer,
    post_payment,
    psp_operations,
    succeeded_operations,
    wait_status,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
IBAN = "DE89 3704 0044 0532 0130 00"


async def deposit(api: httpx.AsyncClient, customer_id: str, amount: int, method: str) -> str:
    body = {
        "customer_id": customer_id,
        "amount": amount,
        "currency": "EUR",
        "payment_method": method,
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["id"]
    return payment_id


async def wait_provider_shown(api: httpx.AsyncClient, payment_id: str) -> None:
    """The provider is shown once the call was sent: the saga is past its point of no return."""
    while (await api.get(f"/v1/payments/{payment_id}")).json()["provider"] is None:
        await asyncio.sleep(0.05)


async def workflow_status(env: WorkflowEnvironment, payment_id: str) -> Any:
    return (await env.client.get_workflow_handle(payment_id).describe()).status


async def audit_entries(ops_api: httpx.AsyncClient, payment_id: str) -> list[dict[str, Any]]:
    audit = await ops_api.get("/v1/ops/audit-log", params={"limit": 100})
    assert audit.status_code == 200, audit.text
    return [e for e in audit.json()["data"] if e["target"] == payment_id]


async def test_withdrawal_to_an_iban_fails_provider_rejected_and_releases_the_hold(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer = await funded_customer(api, 30_000)
    payment = await withdraw(api, customer["id"], 30_000, destination=IBAN)

    done = await wait_terminal(api, payment["id"], timeout=10)

    assert (done["status"], done["failure_code"]) == ("failed", "provider_rejected")
    assert await balance_of(api, customer["id"], "EUR") == balance(30_000)
    assert payouts(stack, "sandbox-cards", payment["id"]) == []
    assert await workflow_status(temporal_env, payment["id"]) == WorkflowExecutionStatus.COMPLETED


async def test_deposit_with_an_unknown_method_fails_provider_rejected(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer = await create_customer(api)
    payment_id = await deposit(api, customer["id"], 1_000, "card_4242")

    done = await wait_terminal(api, payment_id, timeout=10)

    assert (done["status"], done["failure_code"]) == ("failed", "provider_rejected")
    assert await balance_of(api, customer["id"], "EUR") == balance(0)
    assert succeeded_operations(stack, payment_id, "charge") == []
    assert await workflow_status(temporal_env, payment_id) == WorkflowExecutionStatus.COMPLETED


async def test_pending_forever_deposit_requires_intervention_then_resolved_succeeded(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await create_customer(api)
    payment_id = await deposit(api, customer["id"], 2_500, "pm_pending_forever")
    stuck = await wait_status(api, payment_id, {"requires_intervention"}, timeout=30)
    assert stuck["provider"] == "sandbox-cards"
    listed = await api.get("/v1/payments", params={"status": "requires_intervention"})
    assert payment_id in [p["id"] for p in listed.json()["data"]]

    refused = await api.post(f"/v1/payments/{payment_id}/resolve", json={"outcome": "succeeded"})
    resolved = await ops_api.post(
        f"/v1/payments/{payment_id}/resolve",
        json={"outcome": "succeeded", "reason": "the provider's dashboard shows it paid"},
    )

    assert refused.status_code == 403
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "succeeded"
    assert await balance_of(api, customer["id"], "EUR") == balance(2_500)
    [entry] = await audit_entries(ops_api, payment_id)
    assert (entry["action"], entry["detail"]["outcome"]) == ("payment.resolve", "succeeded")


async def test_pending_forever_withdrawal_resolved_failed_voids_the_hold(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await funded_customer(api, 8_000)
    payment = await withdraw(api, customer["id"], 3_000, destination="pm_pending_forever")
    await wait_status(api, payment["id"], {"requires_intervention"}, timeout=30)
    assert await balance_of(api, customer["id"], "EUR") == balance(8_000, held=3_000)
    cancel = await api.post(f"/v1/payments/{payment['id']}/cancel")

    resolved = await ops_api.post(
        f"/v1/payments/{payment['id']}/resolve", json={"outcome": "failed", "reason": "never paid"}
    )
    again = await ops_api.post(f"/v1/payments/{payment['id']}/resolve", json={"outcome": "failed"})

    assert cancel.status_code == 409
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["failure_code"]) == (
        "failed",
        "resolved_by_operator",
    )
    assert await balance_of(api, customer["id"], "EUR") == balance(8_000)
    assert again.status_code == 409
    assert again.json()["code"] == "payment_not_requiring_intervention"


async def test_resolve_of_a_processing_payment_is_refused(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient
) -> None:
    customer = await funded_customer(api, 500_000)
    payment = await withdraw(api, customer["id"], 500_000)  # waits in review
    await wait_status(api, payment["id"], {"requires_review"})

    response = await ops_api.post(
        f"/v1/payments/{payment['id']}/resolve", json={"outcome": "succeeded"}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "payment_not_requiring_intervention"
    assert (await api.post(f"/v1/payments/{payment['id']}/cancel")).status_code == 200


async def test_temporal_cancel_in_review_voids_the_hold_and_cancels(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer = await funded_customer(api, 500_000)
    payment = await withdraw(api, customer["id"], 500_000)
    await wait_status(api, payment["id"], {"requires_review"})

    await temporal_env.client.get_workflow_handle(payment["id"]).cancel()
    done = await wait_terminal(api, payment["id"])

    assert done["status"] == "canceled"
    assert await balance_of(api, customer["id"], "EUR") == balance(500_000)
    assert psp_operations(stack, "sandbox-cards", payment["id"]) == []
    await asyncio.sleep(0.2)  # the workflow closes just after its last status write
    assert await workflow_status(temporal_env, payment["id"]) == WorkflowExecutionStatus.CANCELED


async def test_temporal_cancel_after_payout_sent_finishes_the_withdrawal(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer = await funded_customer(api, 10_000)
    payment = await withdraw(api, customer["id"], 4_000, destination="pm_no_webhook")
    await wait_provider_shown(api, payment["id"])

    await temporal_env.client.get_workflow_handle(payment["id"]).cancel()
    done = await wait_terminal(api, payment["id"])

    assert done["status"] == "succeeded"
    assert len(payouts(stack, "sandbox-cards", payment["id"])) == 1
    assert await balance_of(api, customer["id"], "EUR") == balance(6_000)
    assert await workflow_status(temporal_env, payment["id"]) == WorkflowExecutionStatus.COMPLETED


async def test_temporal_cancel_after_charge_sent_finishes_the_deposit(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    customer = await create_customer(api)
    payment_id = await deposit(api, customer["id"], 1_200, "pm_no_webhook")
    await wait_provider_shown(api, payment_id)
    api_cancel = await api.post(f"/v1/payments/{payment_id}/cancel")

    await temporal_env.client.get_workflow_handle(payment_id).cancel()
    done = await wait_terminal(api, payment_id)

    assert api_cancel.status_code == 409
    assert done["status"] == "succeeded"
    assert len(succeeded_operations(stack, payment_id, "charge")) == 1
    assert succeeded_operations(stack, payment_id, "refund") == []
    assert await balance_of(api, customer["id"], "EUR") == balance(1_200)
    assert await workflow_status(temporal_env, payment_id) == WorkflowExecutionStatus.COMPLETED


async def test_temporal_cancel_while_transfer_pays_out_neither_refunds_nor_stops_it(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    sender = await funded_customer(api, 20_000)
    q = await quote(api, sender["id"], "EUR", "USD", 10_000)
    beneficiary = {"name": "Grace Hopper", "country": "US", "account": "pm_no_webhook"}
    response = await transfer(api, sender["id"], q["id"], beneficiary)
    assert response.status_code == 202, response.text
    payment_id = response.json()["id"]
    await wait_provider_shown(api, payment_id)

    await temporal_env.client.get_workflow_handle(payment_id).cancel()
    done = await wait_terminal(api, payment_id)

    assert done["status"] == "succeeded"
    assert len(succeeded_operations(stack, payment_id, "payout")) == 1
    assert await balance_of(api, sender["id"], "EUR") == balance(10_000)
    assert await workflow_status(temporal_env, payment_id) == WorkflowExecutionStatus.COMPLETED


async def test_review_after_the_deadline_is_refused_and_not_audited(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient
) -> None:
    customer = await funded_customer(api, 500_000)
    payment = await withdraw(api, customer["id"], 500_000)
    await wait_status(api, payment["id"], {"requires_review"})
    done = await wait_terminal(api, payment["id"], timeout=30)  # the deadline is 10 s here

    late = await ops_api.post(f"/v1/payments/{payment['id']}/review", json={"decision": "approve"})

    assert (done["status"], done["failure_code"]) == ("failed", "review_rejected")
    assert late.status_code == 409
    assert await audit_entries(ops_api, payment["id"]) == []
    assert await balance_of(api, customer["id"], "EUR") == balance(500_000)


async def test_cancel_answers_503_within_seconds_while_no_worker_runs(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    customer = await funded_customer(api, 500_000)
    payment = await withdraw(api, customer["id"], 500_000)
    await wait_status(api, payment["id"], {"requires_review"})
    stack.worker.stop()
    try:
        started = time.monotonic()
        unanswered = await api.post(f"/v1/payments/{payment['id']}/cancel")
        waited = time.monotonic() - started
    finally:
        stack.worker.start()

    assert unanswered.status_code == 503, unanswered.text
    assert unanswered.headers["content-type"].startswith("application/problem+json")
    assert waited < 25
    canceled = await api.post(f"/v1/payments/{payment['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert await balance_of(api, customer["id"], "EUR") == balance(500_000)


@pytest.mark.parametrize("attempt", range(3))
async def test_cancel_the_instant_review_shows_cancels_at_once(
    api: httpx.AsyncClient, stack: Stack, attempt: int
) -> None:
    """The row shows the review while its merchant notification is still starting: a cancel
    then must not wait for the review deadline (it did: cancelling the starting child stalled)."""
    customer = await funded_customer(api, 500_000)
    payment = await withdraw(api, customer["id"], 500_000)
    while (await api.get(f"/v1/payments/{payment['id']}")).json()["status"] != "requires_review":
        pass  # no sleep: cancel the instant the row shows the review

    canceled = await api.post(f"/v1/payments/{payment['id']}/cancel")

    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert await balance_of(api, customer["id"], "EUR") == balance(500_000)
