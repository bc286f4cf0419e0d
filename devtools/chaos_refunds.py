"""The refunds of `make chaos`: refunds of the load's deposits while processes crash, then proof.

A succeeded deposit of the load may be refunded in full, in two parts, or by two refunds at once
that together exceed it (one is refused 422, as the contract says); some of the deposits are
`pm_no_refund` (the provider declines their refunds) and some refunds get a cancel from Temporal
at a random moment (a cancel after the refund was sent is ignored). When everything settled it
checks that every refund ended, that its status agrees with the provider's books (succeeded if
and only if the provider refunded it, under its own key, once), that no deposit was refunded
beyond its amount, that each refund moved its customer's wallet as its status says, and that its
workflow agrees with it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowExecutionStatus

from devtools.chaos_findings import (
    Findings,
    LoadClient,
    api_get,
    cancel_from_temporal,
    final_payment,
    workflow_state,
)
from domain.refunds import refund_key_prefix, refund_of_key

REFUND_TERMINAL = {"succeeded", "failed"}


def made_by_a_refund(operation: dict[str, Any]) -> bool:
    """Whether a provider operation is a Refund saga's (key `<deposit>:<refund>:refund`), not
    the deposit saga's own compensation."""
    return refund_of_key(str(operation["idempotency_key"])) is not None


@dataclass
class RefundLoad:
    """The refunds asked for, and how the API answered."""

    refunds: dict[str, str] = field(default_factory=dict)  # refund id -> deposit id
    canceled: set[str] = field(default_factory=set)  # a Temporal cancel was sent
    final: dict[str, dict[str, Any]] = field(default_factory=dict)  # as they ended (`settle`)
    answers: Counter[str] = field(default_factory=Counter)

    async def refund_later(self, load: LoadClient, deposit_id: str | None, n: int) -> None:
        """Once the deposit succeeded: refund it in full, in two parts, or twice at once."""
        if deposit_id is None:
            return
        deposit = await final_payment(load.api, deposit_id)
        if deposit is None or deposit["status"] != "succeeded":
            return
        amount = int(deposit["amount"])
        shape = n % 3
        if shape == 0:
            refund_ids = [await self.submit(load.api, deposit_id, {"reason": "chaos"})]
        elif shape == 1:
            first = await self.submit(load.api, deposit_id, {"amount": amount // 2})
            refund_ids = [first, await self.submit(load.api, deposit_id, {})]
        else:  # together more than the deposit: one of them is refused
            part = {"amount": amount // 2 + 1}
            refund_ids = list(
                await asyncio.gather(*(self.submit(load.api, deposit_id, part) for _ in (1, 2)))
            )
        for refund_id in refund_ids:
            if refund_id is not None and random.random() < 0.2:
                await asyncio.sleep(random.uniform(0, 1))
                self.canceled.add(refund_id)
                self.answers[
                    f"temporal cancel {await cancel_from_temporal(load.temporal, refund_id)}"
                ] += 1

    async def submit(
        self, api: httpx.AsyncClient, deposit_id: str, body: dict[str, Any]
    ) -> str | None:
        """POST the refund until answered, the same Idempotency-Key on every retry."""
        key = str(uuid.uuid4())
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                response = await api.post(
                    f"/v1/payments/{deposit_id}/refunds",
                    json=body,
                    headers={"Idempotency-Key": key},
                )
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 202:
                refund_id: str = response.json()["id"]
                self.refunds[refund_id] = deposit_id
                self.answers["202"] += 1
                return refund_id
            if response is not None and response.status_code < 500 and response.status_code != 409:
                self.answers[f"{response.status_code} {response.json().get('code')}"] += 1
                return None
            await asyncio.sleep(0.5)
        self.answers["gave up"] += 1
        return None

    async def settle(self, api: httpx.AsyncClient, timeout: float) -> dict[str, dict[str, Any]]:
        """Wait until every refund ended (or the timeout); each refund as it is then."""
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(final) < len(self.refunds) and time.monotonic() < deadline:
            for refund_id in [r for r in self.refunds if r not in final]:
                found = await api_get(api, f"/v1/refunds/{refund_id}")
                if found and found["status"] in REFUND_TERMINAL:
                    final[refund_id] = found
            await asyncio.sleep(1)
        for refund_id in self.refunds:
            if refund_id not in final:
                final[refund_id] = (await api_get(api, f"/v1/refunds/{refund_id}")) or {
                    "status": "?"
                }
        self.final = final
        return final


async def check_refunds(
    pool: AsyncConnectionPool,
    temporal: Client,
    final: dict[str, dict[str, Any]],
    deposits: dict[str, dict[str, Any]],
    operations: list[dict[str, Any]],
    findings: Findings,
) -> None:
    """The refunds' must-be-zero counts (module doc)."""
    findings.checking(
        "refund not terminal",
        "refund disagrees with the provider",
        "refunded twice or beyond the deposit",
        "refund moved the wallet other than once",
        "refund workflow disagrees with refund",
    )
    refunded_ops = Counter(
        op["idempotency_key"]
        for op in operations
        if op["kind"] == "refund" and op["status"] == "succeeded" and made_by_a_refund(op)
    )
    refunded_by_deposit: Counter[str] = Counter()
    for op in operations:
        if op["kind"] == "refund" and op["status"] == "succeeded":
            refunded_by_deposit[op["reference"]] += int(op["amount"])
    for deposit_id, refunded in refunded_by_deposit.items():
        if refunded > int(deposits.get(deposit_id, {}).get("amount", 0)):
            findings.found("refunded twice or beyond the deposit", deposit_id)
    wallet_moves = await _refund_wallet_moves(pool, list(final))
    for refund_id, refund in final.items():
        if refund["status"] not in REFUND_TERMINAL:
            findings.found("refund not terminal", refund_id)
            continue
        key = f"{refund_key_prefix(refund['payment_id'], refund_id)}:refund"
        if refunded_ops[key] > 1:
            findings.found("refunded twice or beyond the deposit", refund_id)
        if (refund["status"] == "succeeded") != (refunded_ops[key] == 1):
            findings.found("refund disagrees with the provider", refund_id)
        expected = -int(refund["amount"]) if refund["status"] == "succeeded" else 0
        if wallet_moves.get(refund_id, 0) != expected:
            findings.found("refund moved the wallet other than once", refund_id)
        state = await workflow_state(temporal, refund_id, wait_while_running=30)
        canceled = refund["failure_code"] == "canceled"
        if state not in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.CANCELED) or (
            (state == WorkflowExecutionStatus.CANCELED) != canceled
        ):
            findings.found("refund workflow disagrees with refund", refund_id)


async def _refund_wallet_moves(pool: AsyncConnectionPool, refund_ids: list[str]) -> dict[str, int]:
    """What each refund did to its customer's wallet, from the ledger's entries."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT r.id, COALESCE(SUM(e.amount), 0) FROM refunds r"
            " LEFT JOIN ledger_transactions t ON split_part(t.idempotency_key, ':', 1) = r.payment_id"
            "  AND split_part(t.idempotency_key, ':', 2) = r.id"
            " LEFT JOIN ledger_entries e ON e.transaction_id = t.id AND e.account_id IN"
            "  (SELECT id FROM ledger_accounts WHERE owner_id = r.customer_id"
            "   AND merchant_id = r.merchant_id AND kind = 'customer_wallet')"
            " WHERE r.id = ANY(%s) GROUP BY r.id",
            (refund_ids,),
        )
        return {refund_id: int(net) for refund_id, net in await cur.fetchall()}
