"""Reconciliation: the scheduled workflow matches each provider's settlement report with the ledger."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from temporalio.client import ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from paysaga.settings import DEV_MERCHANT_2_KEY
from tests.stack import Stack, funded_customer, worker_schedule

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def mismatches_for(ops_api: httpx.AsyncClient, reference: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = await ops_api.get("/v1/ops/reconciliation/mismatches", params={"limit": 100})
        assert response.status_code == 200, response.text
        found = [m for m in response.json()["data"] if m["reference"] == reference]
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no mismatch recorded for {reference}")


async def test_planted_settlement_line_is_found_by_scheduled_reconciliation(
    api: httpx.AsyncClient,
    ops_api: httpx.AsyncClient,
    stack: Stack,
    temporal_env: WorkflowEnvironment,
) -> None:
    await funded_customer(api, 3_000)  # at least one matched deposit in the books
    customer = await funded_customer(api, 3_000)
    listed = await api.get("/v1/payments", params={"customer_id": customer["id"]})
    (deposit,) = listed.json()["data"]
    # The provider's books say it charged this deposit 42.42 EUR more than the ledger knows.
    async with httpx.AsyncClient(base_url=stack.psp.url) as psp:
        planted = await psp.post(
            f"/{deposit['provider']}/_sandbox/settlement-adjustments",
            json={
                "kind": "charge",
                "reference": deposit["id"],
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
    found = await mismatches_for(ops_api, deposit["id"])

    assert [(m["provider"], m["provider_amount"], m["ledger_amount"]) for m in found] == [
        (deposit["provider"], 7_242, 3_000)
    ]
    run = found[0]["run_key"].rsplit(":", 1)[0]
    listed = (await ops_api.get("/v1/ops/reconciliation/mismatches", params={"limit": 100})).json()
    same_run = [m["reference"] for m in listed["data"] if m["run_key"].startswith(run)]
    # An operator's resolve of a never-settled sandbox payment (test_clear_ends) is a real
    # mismatch, by design: reconciliation is what catches a wrong resolution.
    audit = (await ops_api.get("/v1/ops/audit-log", params={"limit": 100})).json()["data"]
    resolved = {e["target"] for e in audit if e["action"] == "payment.resolve"}
    # every other real payment of the session matched its ledger entries
    assert [r for r in same_run if r not in resolved] == [deposit["id"]]
    forbidden = await api.get("/v1/ops/reconciliation/mismatches")
    assert forbidden.status_code == 403
    # Another merchant's operators never see this merchant's mismatches.
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_2_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as other:
        theirs = await other.get("/v1/ops/reconciliation/mismatches", params={"limit": 100})
    assert deposit["id"] not in {m["reference"] for m in theirs.json()["data"]}
