"""`make dr-drill`: lose the ledger database under load, restore it, prove nothing was lost.

It starts the chaos run's stack (embedded PostgreSQL, Temporal dev server, sandbox PSP, two
workers, API) on free loopback ports, turns on WAL archiving and the synchronous WAL receiver
(`paysaga.backup`), takes a base backup (and a copy of Temporal's store), then drives a mixed
load: deposits, withdrawals, and wallet bets and wins, every request retried with its own
idempotency key until answered. Midway the disaster: every PostgreSQL process is killed
(SIGKILL) and its data directory deleted. The drill restores the latest base backup, replays
the WAL received up to the last record, restarts the API and the workers, and goes on with the
load. It prints

- the RPO: committed ledger writes lost. Committed means acknowledged: a payment the API
  accepted (202), a wallet call it answered (200), and every ledger transaction a watcher read
  back from the database once the backup receiver had confirmed the WAL holding it (what the
  worker's activity, and so Temporal, was told). Target 0;
- the RTO: seconds from the kill until the API accepts a deposit again;

then, once every payment settled: the ledger audit, the reconciliation of the sandbox PSP's
settlement reports against the ledger, and for every payment (those in flight at the disaster
too) that it ended exactly once: no charge without its credit, no payout twice, a wallet that
moved by what the payment says. Exit status 0 only if the RPO is 0 and every count is zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
from temporalio.client import Client

from devtools.chaos import (
    Load,
    Stack,
    check_books,
    check_workflows,
    settle,
    start_stack,
)
from devtools.chaos_findings import Findings
from devtools.chaos_operator import Operator
from devtools.dr_load import (
    GAME_PROVIDER,
    Acknowledged,
    fund_customers,
    run_load,
    watch_ledger,
)
from devtools.stack import wait_for_http
from paysaga import backup
from paysaga.settings import DEV_MERCHANT_KEY, DEV_OPS_KEY


@dataclass
class Disaster:
    """When the database was lost, and when deposits were accepted again."""

    killed_at: float = 0.0
    restored_at: float = 0.0
    accepting_at: float = 0.0
    steps: list[tuple[str, float]] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)  # payments not final when it struck

    @property
    def rto(self) -> float:
        return self.accepting_at - self.killed_at


async def probe_deposits(api: httpx.AsyncClient, customer: str, disaster: Disaster) -> None:
    """One deposit sent again and again (its key kept) until accepted: the end of the RTO."""
    key = str(uuid.uuid4())
    body = {"customer_id": customer, "currency": "EUR", "amount": 100, "payment_method": "pm_ok"}
    while True:
        try:
            response = await api.post(
                "/v1/deposits", json=body, headers={"Idempotency-Key": key}, timeout=2
            )
            if response.status_code == 202:
                disaster.accepting_at = time.monotonic()
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)


def kill_postgres(pgdata: Path) -> int:
    """SIGKILL the postmaster and every process of it; the number killed."""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    processes = [postmaster, *postmaster.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=10)
    return len(processes)


@dataclass
class Backups:
    """The drill's backup directory and its WAL receiver."""

    layout: backup.BackupLayout
    log: Path
    receiver: subprocess.Popen[bytes] | None = None

    def start_receiver(self, database_url: str) -> None:
        self.receiver = backup.start_receiver(database_url, self.layout, self.log)
        backup.wait_for_receiver(database_url)

    def stop_receiver(self) -> None:
        if self.receiver is not None and self.receiver.poll() is None:
            self.receiver.terminate()
            try:
                self.receiver.wait(10)
            except subprocess.TimeoutExpired:
                self.receiver.kill()
                self.receiver.wait()
        self.receiver = None


def set_up_backups(stack: Stack, backups: Backups) -> None:
    """Archiving on (PostgreSQL restarted for it), the receiver streaming, a base backup."""
    if backup.enable_archiving(stack.database_url, backups.layout):
        step("restarting PostgreSQL with WAL archiving on")
        stack.restart_postgres()
    step("starting the synchronous WAL receiver (pg_receivewal --synchronous)")
    backups.start_receiver(stack.database_url)
    step("base backup (pg_basebackup) and a copy of Temporal's store")
    backup.base_backup(stack.database_url, backups.layout)
    backup.copy_temporal_store(stack.root / "temporal.db", backups.layout)


async def disaster_and_recovery(
    stack: Stack, backups: Backups, disaster: Disaster, api: httpx.AsyncClient, customer: str
) -> None:
    """Kill PostgreSQL and delete its data; restore; restart the API and workers."""
    pgdata = Path(stack.postgres.pgdata)
    socket = backup.socket_dir(stack.database_url) or str(pgdata)
    disaster.in_flight = await payments_in_flight(stack.database_url)
    disaster.killed_at = time.monotonic()
    probe = asyncio.create_task(probe_deposits(api, customer, disaster))
    killed = kill_postgres(pgdata)
    shutil.rmtree(pgdata)
    note(f"DISASTER: {killed} PostgreSQL processes killed (SIGKILL), {pgdata} deleted")

    def mark(what: str, at: float | None = None) -> None:
        seconds = (at or time.monotonic()) - disaster.killed_at
        disaster.steps.append((what, seconds))
        note(f"{what} (+{seconds:.1f} s)")

    mark("PostgreSQL killed, its data directory deleted")
    backups.stop_receiver()  # it flushed every write it confirmed
    mark("WAL receiver stopped (its stream moves aside for the recovery)")
    base = await asyncio.to_thread(backup.restore, backups.layout, pgdata)
    mark(f"restored base backup {base.name}; replaying the archived and streamed WAL")
    await asyncio.to_thread(backup.start_server, pgdata, socket, pgdata / "log")
    await asyncio.to_thread(backup.wait_until_promoted, stack.database_url)
    disaster.restored_at = time.monotonic()
    mark("PostgreSQL recovered to the latest record and promoted")
    await asyncio.to_thread(backups.start_receiver, stack.database_url)
    mark("WAL receiver streaming again (commits acknowledged again)")
    await asyncio.to_thread(stack.restart, "api")
    await asyncio.to_thread(wait_for_http, f"{stack.api_url}/healthz", 60)
    for name in [n for n, _ in stack.group.processes if n.startswith("worker-")]:
        await asyncio.to_thread(stack.restart, name)
    mark("API and workers restarted")
    await probe
    mark("deposits accepted again", disaster.accepting_at)
    await asyncio.to_thread(backup.base_backup, stack.database_url, backups.layout)
    mark("new base backup taken (the new timeline's)")


async def payments_in_flight(database_url: str) -> set[str]:
    """The payments not yet final, read just before the disaster."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT id FROM payments WHERE status NOT IN ('succeeded', 'failed', 'canceled')"
        )
        return {pid for (pid,) in await cur.fetchall()}


async def lost_writes(database_url: str, load: Load, acked: Acknowledged) -> dict[str, list[str]]:
    """What was acknowledged before the disaster and is not in the restored database."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT idempotency_key FROM ledger_transactions")
        ledger = {key for (key,) in await cur.fetchall()}
        cur = await conn.execute("SELECT id FROM payments")
        payments = {pid for (pid,) in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT transaction_id FROM wallet_transactions WHERE game_provider = %s",
            (GAME_PROVIDER,),
        )
        wallet = {tid for (tid,) in await cur.fetchall()}
    return {
        "ledger transactions": sorted(acked.ledger_keys - ledger),
        "payments accepted": sorted(acked.payments(load) - payments),
        "wallet calls answered": sorted(acked.wallet_calls - wallet),
    }


async def drill(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="paysaga-dr-"))
    step(f"starting a stack in {root}")
    stack = start_stack(root, workers=2)
    backups = Backups(backup.BackupLayout(root / "backup"), root / "logs" / "pg_receivewal.log")
    try:
        set_up_backups(stack, backups)
        temporal = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
        headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
        ops_headers = {"Authorization": f"Bearer {DEV_OPS_KEY}"}
        async with (
            httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=10) as api,
            httpx.AsyncClient(base_url=stack.api_url, headers=ops_headers, timeout=30) as ops,
        ):
            load = Load(api, temporal, Operator(ops, temporal))
            acked = Acknowledged()
            customers = await fund_customers(load, args.customers)
            disaster = Disaster()
            stop_watching = asyncio.Event()
            watcher = asyncio.create_task(watch_ledger(stack.database_url, acked, stop_watching))
            step(f"load for {args.duration:.0f} s at {args.rate}/s; the disaster comes midway")

            async def disaster_midway() -> dict[str, list[str]]:
                await asyncio.sleep(args.duration / 2)
                stop_watching.set()
                await watcher
                before = Acknowledged(set(acked.wallet_calls), set(acked.ledger_keys))
                payments_before = set(load.payments)
                await disaster_and_recovery(stack, backups, disaster, api, customers[0])
                lost = await lost_writes(stack.database_url, load, before)
                lost["payments accepted"] = sorted(
                    p for p in payments_before if p in lost["payments accepted"]
                )
                note(
                    f"acknowledged before the disaster: {len(before.ledger_keys)} ledger"
                    f" transactions, {len(payments_before)} payments,"
                    f" {len(before.wallet_calls)} wallet calls"
                )
                return lost

            _, lost = await asyncio.gather(
                run_load(load, customers, acked, args.duration, args.rate), disaster_midway()
            )
            step("waiting for every payment to settle")
            final = await settle(load, args.settle_timeout)
            findings = Findings()
            findings.checking("not terminal")
            for payment_id in set(load.payments) - set(final):
                findings.found("not terminal", payment_id)
            step("ledger audit, reconciliation with the PSP's books, exactly-once checks")
            await check_books(stack, final, load, findings)
            await check_workflows(temporal, final, set(), findings)
        rpo = sum(len(ids) for ids in lost.values())
        print(f"\npayments accepted: {len(load.payments)}; wallet calls: {len(acked.wallet_calls)}")
        for outcome, n in sorted(
            Counter(f"{load.payments[p]} {v['status']}" for p, v in final.items()).items()
        ):
            print(f"  {outcome:<28} {n}")
        print(
            f"client retries: payments {dict(load.retry_reasons)},"
            f" wallet calls {dict(acked.wallet_retry_reasons)}"
        )
        ended = Counter(final[p]["status"] for p in disaster.in_flight if p in final)
        print(
            f"in flight at the disaster: {len(disaster.in_flight)}, ended {dict(sorted(ended.items()))}"
        )
        print("recovery steps (seconds after the kill):")
        for what, at in disaster.steps:
            print(f"  {at:7.1f}  {what}")
        print(f"\nRPO: {rpo} committed ledger writes lost", end="")
        print(" (" + ", ".join(f"{k}: {len(v)}" for k, v in lost.items()) + ")")
        for kind, ids in lost.items():
            if ids:
                print(f"  lost {kind}: {', '.join(ids[:5])}")
        print(f"RTO: {disaster.rto:.1f} s until deposits were accepted again")
        findings.counts["requests never accepted"] = load.refused.pop("gave up", 0)
        # While the database is away the API answers 503 (retry later), never 500.
        findings.counts["answered 500"] = (
            load.retry_reasons["500"] + acked.wallet_retry_reasons["500"]
        )
        findings.print()
        ok = rpo == 0 and not any(findings.counts.values())
        print("\ndr-drill: PASS" if ok else "\ndr-drill: FAIL", f"(logs in {root / 'logs'})")
        return 0 if ok else 1
    finally:
        stack.group.stop_all()
        backups.stop_receiver()
        with contextlib.suppress(subprocess.CalledProcessError, backup.BackupError):
            stack.stop_postgres()
        stack.postgres.cleanup()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def step(message: str) -> None:
    print(f"[dr] {message}", flush=True)


def note(message: str) -> None:
    print(f"\n[dr] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.dr_drill", description=__doc__)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--rate", type=float, default=5, help="requests per second")
    parser.add_argument("--customers", type=int, default=6)
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the data, backups and logs")
    return asyncio.run(drill(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
