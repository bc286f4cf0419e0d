"""The disputes of `make chaos`: chargebacks of the load's deposits while processes crash, then proof.

Some succeeded deposits of the load are disputed at the sandbox PSP (as a card network opens a
dispute: any amount up to the deposit, a fee or none, a planted verdict, a short due date), and
so are deposits that ended failed while their provider kept a charge of them; the merchant's
operator then submits evidence, accepts, or lets the due date pass. When everything
settled it checks that every dispute the provider opened was recorded once and ended, that its
status agrees with the provider's (won, or lost), that its money moved once (one withdrawal of
the amount and fee against the provider's clearing, one reinstatement of the amount if and only
if won), and that its workflow completed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowExecutionStatus

from devtools.chaos_findings import Findings, LoadClient, api_get, final_payment, workflow_state
from domain.disputes import dispute_id_for
from paysaga.settings import DEV_OPS_KEY
from providers.registry import PROVIDER_NAMES

FINAL = {"won", "lost"}
PLANS = ["evidence", "evidence", "accept", "none"]  # the operator's answer, or none by the due date


@dataclass
class Planted:
    """A dispute the provider opened: of which deposit, at which provider, and what was done."""

    deposit_id: str
    provider: str
    provider_dispute_id: str
    amount: int
    fee: int
    plan: str
    answer: str = "-"  # how the API answered the operator
    of_failed: bool = False  # the deposit had ended failed


@dataclass
class DisputeLoad:
    """The disputes opened at the provider, and how the API answered the operator."""

    api_url: str = ""
    psp_url: str = ""
    planted: dict[str, Planted] = field(default_factory=dict)  # by our dispute id
    final: dict[str, dict[str, Any]] = field(default_factory=dict)  # as they ended (`settle`)
    answers: Counter[str] = field(default_factory=Counter)

    async def dispute_later(
        self, load: LoadClient, deposit_id: str | None, ended: str = "succeeded"
    ) -> None:
        """Once the deposit ended `ended`: a dispute of it, then the operator's plan for it.

        A deposit that ended `failed` is disputed too when its provider holds a succeeded charge
        of it not refunded (an operator resolved it failed while the charge was pending, say):
        the provider answers anything else 404 or 422, counted as `plant failed <status>`.
        """
        if deposit_id is None:
            return
        deposit = await final_payment(load.api, deposit_id)
        if deposit is None or deposit["status"] != ended:
            return
        for provider in [deposit["provider"]] if deposit.get("provider") else PROVIDER_NAMES:
            planted = await self._plant(deposit, str(provider), of_failed=ended == "failed")
            if planted is not None:
                break
        else:
            return
        dispute_id = dispute_id_for(planted.provider, planted.provider_dispute_id)
        self.planted[dispute_id] = planted
        if planted.plan == "none":
            return
        await asyncio.sleep(random.uniform(0, 3))
        planted.answer = await self._answer(dispute_id, planted.plan)
        self.answers[f"{planted.plan} {planted.answer}"] += 1

    async def _plant(
        self, deposit: dict[str, Any], provider: str, of_failed: bool = False
    ) -> Planted | None:
        """Open a dispute at the deposit's provider, once, whatever the PSP's freezes do."""
        amount = random.randint(1, int(deposit["amount"]))
        body = {
            "reference": deposit["id"],
            "amount": amount,
            "fee": random.choice([0, 0, random.randint(1, 300)]),
            "outcome": random.choice(["won", "lost"]),
            "evidence_due_in_seconds": random.uniform(6, 20),
        }
        label = "plant failed" if of_failed else "plant"
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=self.psp_url, timeout=5) as psp:
            while time.monotonic() < deadline:
                try:
                    response = await psp.post(f"/{provider}/_sandbox/disputes", json=body)
                    if response.status_code == 409:  # an earlier attempt opened it
                        listed = await psp.get(
                            f"/{provider}/disputes", params={"reference": deposit["id"]}
                        )
                        if listed.json()["data"]:
                            response = httpx.Response(201, json=listed.json()["data"][0])
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)
                    continue
                if response.status_code != 201:
                    self.answers[f"{label} {response.status_code}"] += 1
                    return None
                if of_failed:
                    self.answers[f"{label} 201"] += 1
                opened = response.json()
                plan = random.choice(PLANS)
                return Planted(
                    deposit["id"],
                    provider,
                    opened["id"],
                    opened["amount"],
                    opened["fee"],
                    plan,
                    of_failed=of_failed,
                )
        self.answers["gave up"] += 1
        return None

    async def _answer(self, dispute_id: str, plan: str) -> str:
        """Evidence or acceptance, until the API takes it (200) or says it is too late (409)."""
        headers = {"Authorization": f"Bearer {DEV_OPS_KEY}"}
        body = {"text": "delivery receipt"} if plan == "evidence" else None
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=30) as ops:
            while time.monotonic() < deadline:
                try:
                    response = await ops.post(f"/v1/disputes/{dispute_id}/{plan}", json=body)
                except httpx.HTTPError:
                    response = None
                # 404: its created event has not reached the API yet; 503: retry later.
                if response is not None and response.status_code in (200, 409):
                    return str(response.status_code)
                await asyncio.sleep(0.5)
        self.answers["gave up"] += 1
        return "gave up"

    async def settle(self, api: httpx.AsyncClient, timeout: float) -> dict[str, dict[str, Any]]:
        """Wait until every dispute ended (or the timeout); each dispute as it is then."""
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(final) < len(self.planted) and time.monotonic() < deadline:
            for dispute_id in [d for d in self.planted if d not in final]:
                found = await api_get(api, f"/v1/disputes/{dispute_id}")
                if found and found["status"] in FINAL:
                    final[dispute_id] = found
            await asyncio.sleep(1)
        for dispute_id in self.planted:
            if dispute_id not in final:
                final[dispute_id] = (await api_get(api, f"/v1/disputes/{dispute_id}")) or {
                    "status": "?"
                }
        self.final = final
        return final


async def check_disputes(
    pool: AsyncConnectionPool, temporal: Client, disputes: DisputeLoad, findings: Findings
) -> None:
    """The disputes' must-be-zero counts (module doc)."""
    findings.checking(
        "dispute not final",
        "dispute disagrees with the provider",
        "dispute booked other than once",
        "dispute workflow disagrees with dispute",
    )
    bookings = await _bookings(pool, list(disputes.final))
    async with httpx.AsyncClient(base_url=disputes.psp_url, timeout=30) as psp:
        for dispute_id, dispute in disputes.final.items():
            planted = disputes.planted[dispute_id]
            if dispute["status"] not in FINAL:
                findings.found("dispute not final", dispute_id)
                continue
            theirs = await psp.get(f"/{planted.provider}/disputes/{planted.provider_dispute_id}")
            if theirs.json()["status"] != dispute["status"]:
                findings.found("dispute disagrees with the provider", dispute_id)
            expected = {"withdraw": [planted.amount + planted.fee]}
            if dispute["status"] == "won":
                expected["reinstate"] = [-planted.amount]
            if bookings.get(dispute_id, {}) != expected:
                findings.found("dispute booked other than once", dispute_id)
            state = await workflow_state(temporal, dispute_id)
            if state != WorkflowExecutionStatus.COMPLETED:
                findings.found("dispute workflow disagrees with dispute", dispute_id)


async def _bookings(
    pool: AsyncConnectionPool, dispute_ids: list[str]
) -> dict[str, dict[str, list[int]]]:
    """Each dispute's ledger transactions by step: what each moved on provider clearing."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.id, split_part(t.idempotency_key, ':', 4), SUM(e.amount)"
            " FROM disputes d JOIN ledger_transactions t"
            "  ON t.idempotency_key LIKE d.payment_id || ':dispute:' || d.id || ':%%'"
            " JOIN ledger_entries e ON e.transaction_id = t.id"
            " JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'provider_clearing'"
            " WHERE d.id = ANY(%s) GROUP BY d.id, t.id ORDER BY t.id",
            (dispute_ids,),
        )
        found: dict[str, dict[str, list[int]]] = {}
        for dispute_id, step, amount in await cur.fetchall():
            found.setdefault(dispute_id, {}).setdefault(step, []).append(int(amount))
        return found
