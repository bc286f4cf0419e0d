"""Sagas terminated from the Temporal UI, through the real stack: the sweep parks the payment, the
operator's `POST /v1/payments/{id}/resolve` books the decision without the saga."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from tests.api.test_clear_ends import audit_entries, deposit, wait_provider_shown
from tests.api.test_withdrawals import balance, withdraw
from tests.stack import Stack, balance_of, create_customer, funded_customer, wait_status
from workflows.payment_sweep import PaymentSweepInput, PaymentSweepWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_terminated_withdrawal_is_swept_then_resolved_failed_through_the_api(
    api: httpx.AsyncClient,
    ops_api: httpx.AsyncClient,
    stack: Stack,
    temporal_env: WorkflowEnvironment,
) -> None:
    customer = await funded_customer(api, 8_000)
    payment = await withdraw(api, customer["id"], 3_000, destination="pm_pending_forever")
    await wait_provider_shown(api, payment["id"])  # its payout sent, its outcome pending
    await temporal_env.client.get_workflow_handle(payment["id"]).terminate("from the UI")

    sweep = await temporal_env.client.start_workflow(  # the sweep, as its schedule starts it
        PaymentSweepWorkflow.run,
        PaymentSweepInput(grace_seconds=0),
        id=f"sweep-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    deadline = time.monotonic() + 60
    while (await sweep.describe()).status == WorkflowExecutionStatus.RUNNING:
        assert time.monotonic() < deadline, "the sweep did not finish"
        await asyncio.sleep(0.1)
    parked = (await api.get(f"/v1/payments/{payment['id']}")).json()
    assert parked["status"] == "requires_intervention"
    assert "terminated" in parked["failure_reason"]
    assert await balance_of(api, customer["id"], "EUR") == balance(8_000, held=3_000)

    resolved = await ops_api.post(
        f"/v1/payments/{payment['id']}/resolve", json={"outcome": "failed", "reason": "never paid"}
    )
    again = await ops_api.post(f"/v1/payments/{payment['id']}/resolve", json={"outcome": "failed"})

    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["failure_code"]) == (
        "failed",
        "resolved_by_operator",
    )
    assert await balance_of(api, customer["id"], "EUR") == balance(8_000)
    assert again.status_code == 409
    assert again.json()["code"] == "payment_not_requiring_intervention"
    [entry] = await audit_entries(ops_api, payment["id"])
    assert (entry["action"], entry["detail"]["outcome"]) == ("payment.resolve", "failed")


async def test_terminated_deposit_in_intervention_resolved_succeeded_is_credited_once(
    api: httpx.AsyncClient,
    ops_api: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
) -> None:
    customer = await create_customer(api)
    payment_id = await deposit(api, customer["id"], 2_500, "pm_pending_forever")
    await wait_status(api, payment_id, {"requires_intervention"}, timeout=30)
    await temporal_env.client.get_workflow_handle(payment_id).terminate("from the UI")

    resolved = await ops_api.post(
        f"/v1/payments/{payment_id}/resolve",
        json={"outcome": "succeeded", "reason": "the provider's dashboard shows it paid"},
    )
    again = await ops_api.post(f"/v1/payments/{payment_id}/resolve", json={"outcome": "succeeded"})

    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "succeeded"
    assert again.status_code == 409
    assert await balance_of(api, customer["id"], "EUR") == balance(2_500)
