"""The operator's other tools in `make chaos`, and the money they must never move.

Beside the single cancels of `chaos`, the load's operator terminates sagas from Temporal at random
moments, resets others (Temporal's reset, to the first workflow task completed: the saga runs its
steps again), cancels from the API again and again at random moments while a step is in flight (a
step may complete despite the cancel), and resolves `failed` deposits whose provider outcome is
pending (`pm_pending_forever`, or one slowed by the PSP's freeze) while they poll; deposits that
ended failed are disputed at the provider (`chaos_disputes`). Once everything settled and the
orphan sweep has run (it parks a payment whose workflow is closed while its row is not final),
it counts from the database, the ledger and the sandbox PSP's records:

1. payments neither terminal nor in `requires_intervention`;
2. money moved after an accepted cancel: a cancel answered 200 whose payment then shows
   succeeded, a charge or payout at the provider, or a ledger posting (a voided hold moves none);
3. a customer charged, neither credited nor refunded: a deposit charged at the provider that
   ended failed or canceled in our books and was not refunded there;
4. a credit kept on a failed or canceled deposit: its `{id}:credit` transaction not reversed;
5. disputes that took more from the customer than the deposit gave: the customer parts of its
   disputes above what it credited less its succeeded refunds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from devtools.chaos_findings import TERMINAL, Findings, api_get
from workflows.payment_sweep import PaymentSweepInput

MOMENT_SECONDS_MAX = 2.5  # an operator acts at a random moment up to this late
RESOLVE_FOR_SECONDS = 90  # how long the operator keeps trying to resolve a polling deposit


@dataclass
class Operator:
    """The operator's tools, and how Temporal and the API answered each."""

    api: httpx.AsyncClient  # with an ops key: resolve is an operator's action
    temporal: Client
    terminated: set[str] = field(default_factory=set)
    reset: set[str] = field(default_factory=set)
    cancel_accepted: set[str] = field(default_factory=set)  # an API cancel answered 200
    resolved_failed: set[str] = field(default_factory=set)  # a resolve `failed` answered 200
    answers: Counter[str] = field(default_factory=Counter)

    async def _running(self, payment_id: str) -> str | None:
        """The run id of the payment's workflow while it runs, else None."""
        try:
            described = await self.temporal.get_workflow_handle(payment_id).describe()
        except RPCError:
            return None
        if described.status != WorkflowExecutionStatus.RUNNING:
            return None
        return described.run_id

    async def terminate_later(self, payment_id: str) -> None:
        """Terminate the saga from Temporal at a random moment (the UI's Terminate)."""
        await asyncio.sleep(random.uniform(0, MOMENT_SECONDS_MAX))
        if await self._running(payment_id) is None:
            self.answers["terminate: already closed"] += 1
            return
        try:
            await self.temporal.get_workflow_handle(payment_id).terminate(
                reason="chaos: an operator's terminate"
            )
        except RPCError as exc:
            self.answers[f"terminate: {exc.status.name if exc.status else 'error'}"] += 1
            return
        self.terminated.add(payment_id)
        self.answers["terminate: done"] += 1

    async def reset_later(self, payment_id: str) -> None:
        """Reset the saga to its first workflow task completed, at a random moment."""
        await asyncio.sleep(random.uniform(0, MOMENT_SECONDS_MAX))
        run_id = await self._running(payment_id)
        if run_id is None:
            self.answers["reset: already closed"] += 1
            return
        try:
            history = await self.temporal.get_workflow_handle(
                payment_id, run_id=run_id
            ).fetch_history()
            first_task = next(
                event.event_id
                for event in history.events
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            )
            await self.temporal.workflow_service.reset_workflow_execution(
                ResetWorkflowExecutionRequest(
                    namespace=self.temporal.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=payment_id, run_id=run_id),
                    reason="chaos: an operator's reset",
                    workflow_task_finish_event_id=first_task,
                    request_id=str(uuid.uuid4()),
                )
            )
        except (RPCError, StopIteration) as exc:
            status = getattr(exc, "status", None)
            self.answers[f"reset: {status.name if status else type(exc).__name__}"] += 1
            return
        self.reset.add(payment_id)
        self.answers["reset: done"] += 1

    async def cancel_repeatedly(self, payment_id: str, times: int) -> None:
        """API cancels at random moments, one after another, whatever the earlier answers."""
        for _ in range(times):
            await asyncio.sleep(random.uniform(0, MOMENT_SECONDS_MAX / times))
            try:
                response = await self.api.post(f"/v1/payments/{payment_id}/cancel")
            except httpx.HTTPError:
                self.answers["repeated cancel: no answer"] += 1
                continue
            self.answers[f"repeated cancel: {response.status_code}"] += 1
            if response.status_code == 200:
                self.cancel_accepted.add(payment_id)

    async def resolve_failed_while_polling(self, payment_id: str) -> bool:
        """`resolve failed` at random moments until taken (the deposit polls its provider: 409
        while `processing`, 200 once it waits in `requires_intervention`) or it ended."""
        deadline = time.monotonic() + RESOLVE_FOR_SECONDS
        body = {"outcome": "failed", "reason": "chaos: checked with the provider"}
        last = "no answer"
        while time.monotonic() < deadline:
            await asyncio.sleep(random.uniform(0.2, MOMENT_SECONDS_MAX))
            try:
                response = await self.api.post(f"/v1/payments/{payment_id}/resolve", json=body)
            except httpx.HTTPError:
                continue
            last = str(response.status_code)
            if response.status_code == 200:
                self.answers["resolve failed: 200"] += 1
                self.resolved_failed.add(payment_id)
                return True
            payment = await api_get(self.api, f"/v1/payments/{payment_id}")
            if payment is not None and payment["status"] in TERMINAL:
                self.answers[f"resolve failed: {response.status_code}, then ended"] += 1
                return False
            if await self._running(payment_id) is None:  # terminated, then parked by the sweep
                self.answers[f"resolve failed: {response.status_code}, workflow closed"] += 1
                return False
        self.answers[f"resolve failed: never taken (last {last})"] += 1
        return False

    async def resolve_stuck_deposits(
        self,
        stop: asyncio.Event,
        spared: set[str],
        then: Callable[[str], Awaitable[None]],
    ) -> None:
        """Until `stop`: resolve `failed` each deposit seen waiting in `requires_intervention`
        (a slow provider's), but those in `spared` (left for the run to find parked); `then`
        for each one taken."""
        tried: set[str] = set()
        resolving: list[asyncio.Task[None]] = []

        async def resolve(payment_id: str) -> None:
            if await self.resolve_failed_while_polling(payment_id):
                await then(payment_id)

        while not stop.is_set():
            listed = await api_get(
                self.api, "/v1/payments?kind=deposit&status=requires_intervention&limit=100"
            )
            for payment in (listed or {}).get("data", []):
                if payment["id"] not in tried | spared | self.terminated:
                    tried.add(payment["id"])
                    resolving.append(asyncio.create_task(resolve(payment["id"])))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        await asyncio.gather(*resolving)

    def summary(self) -> dict[str, int]:
        return dict(sorted(self.answers.items()))


async def run_orphan_sweep(temporal: Client, task_queue: str, grace_seconds: float) -> str:
    """Run the orphan sweep once, as its schedule does; how its workflow ended (its result is
    encrypted by the worker's codec, not read here)."""
    handle = await temporal.start_workflow(
        "PaymentSweep",
        PaymentSweepInput(grace_seconds=grace_seconds),
        id=f"chaos-sweep-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    deadline = time.monotonic() + 120
    while (status := (await handle.describe()).status) == WorkflowExecutionStatus.RUNNING:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    return status.name if status else "unknown"


async def check_operator(
    pool: AsyncConnectionPool[Any],
    operator: Operator,
    operations: list[dict[str, Any]],
    findings: Findings,
) -> None:
    """The five must-be-zero counts of the module doc, from the books after the sweep."""
    findings.checking(
        "not terminal nor requires_intervention",
        "money moved after an accepted cancel",
        "customer charged, neither credited nor refunded",
        "credit kept on a failed or canceled deposit",
        "dispute took more than the customer got",
    )
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id, kind, status FROM payments")
        payments = {pid: (kind, status) for pid, kind, status in await cur.fetchall()}
        # Ledger transactions of each payment's own steps (a refund's or dispute's are theirs).
        cur = await conn.execute(
            "SELECT split_part(t.idempotency_key, ':', 1), t.idempotency_key, t.id,"
            " EXISTS (SELECT 1 FROM ledger_transactions r WHERE r.reverses_transaction_id = t.id)"
            " FROM ledger_transactions t"
            " WHERE split_part(t.idempotency_key, ':', 2) <> 'dispute'"
            " AND left(split_part(t.idempotency_key, ':', 2), 4) <> 'ref_'"
            " AND t.reverses_transaction_id IS NULL"
        )
        postings: dict[str, list[tuple[str, bool]]] = {}
        for payment_id, key, _, reversed_ in await cur.fetchall():
            postings.setdefault(payment_id, []).append((key, reversed_))
        # What each deposit's credit gave its customer (wallet and receivable), unless reversed.
        cur = await conn.execute(
            "SELECT p.id, COALESCE(SUM(e.amount), 0) FROM payments p"
            " JOIN ledger_transactions t ON t.idempotency_key = p.id || ':credit'"
            " JOIN ledger_entries e ON e.transaction_id = t.id"
            " JOIN ledger_accounts a ON a.id = e.account_id AND a.owner_id = p.customer_id"
            "  AND a.kind IN ('customer_wallet', 'customer_receivable')"
            " WHERE p.kind = 'deposit' AND NOT EXISTS"
            "  (SELECT 1 FROM ledger_transactions r WHERE r.reverses_transaction_id = t.id)"
            " GROUP BY p.id"
        )
        credited = {pid: int(amount) for pid, amount in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT payment_id, SUM(amount) FROM refunds WHERE status = 'succeeded'"
            " GROUP BY payment_id"
        )
        refunded = {pid: int(amount) for pid, amount in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT payment_id, SUM(customer_part), min(id) FROM disputes GROUP BY payment_id"
        )
        disputed = {pid: (int(part), dispute_id) for pid, part, dispute_id in await cur.fetchall()}

    moved_at_provider: Counter[tuple[str, str]] = Counter()
    for op in operations:
        if op["status"] == "succeeded":
            moved_at_provider[(op["reference"], op["kind"])] += int(op["amount"])

    for payment_id, (kind, status) in payments.items():
        if status not in TERMINAL | {"requires_intervention"}:
            findings.found("not terminal nor requires_intervention", payment_id)
        if payment_id in operator.cancel_accepted and (
            status == "succeeded"
            or moved_at_provider[(payment_id, "charge")]
            or moved_at_provider[(payment_id, "payout")]
            or postings.get(payment_id)
        ):
            findings.found("money moved after an accepted cancel", payment_id)
        if kind != "deposit" or status not in ("failed", "canceled"):
            continue
        charged = moved_at_provider[(payment_id, "charge")]
        if charged and moved_at_provider[(payment_id, "refund")] < charged:
            findings.found("customer charged, neither credited nor refunded", payment_id)
        credit = f"{payment_id}:credit"
        if any(key == credit and not reversed_ for key, reversed_ in postings.get(payment_id, [])):
            findings.found("credit kept on a failed or canceled deposit", payment_id)
    for payment_id, (customer_part, dispute_id) in disputed.items():
        given = credited.get(payment_id, 0) - refunded.get(payment_id, 0)
        if customer_part > max(given, 0):
            findings.found("dispute took more than the customer got", dispute_id)
