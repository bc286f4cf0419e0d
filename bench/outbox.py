"""The webhook outbox's phase of `make bench`: deliveries/s behind a shallow and a deep backlog.

In a database of its own on the bench's PostgreSQL (so that the stack's worker does not take its
events), it gives `merchants` merchants an endpoint (a receiver process of its own answering 200
at once) and a backlog, then runs one webhook dispatcher and times its first `deliveries`
deliveries: with 1,000 pending (`rounds` fresh backlogs, each drained after its timing), then
with 100,000 pending (`rounds` timings in a row). A claim that
walks the backlog makes the deep figure fall; the target is at least 0.9 x the shallow one.
PostgreSQL's CPU per delivery is read from /proc (the server's process tree) over each window.

`python -m bench.outbox --database-url URL` runs it alone and prints the figures.

`outbox_backlog` is the one place that knows how the outbox stores what it still has to deliver
(the events past the merchant's cursor, and those not numbered yet), read by the HTTP ramp.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg

from devtools.stack import free_port
from paysaga.database import open_pool, run_migrations
from paysaga.settings import Settings
from paysaga.store import Store
from paysaga.webhook_delivery import WebhookDispatcher

BACKLOG_QUERY = """
SELECT coalesce((SELECT m.last_event_sequence - c.delivered_through FROM merchants m
                 JOIN webhook_cursors c ON c.merchant_id = m.id WHERE m.id = %(m)s),
                (SELECT last_event_sequence FROM merchants WHERE id = %(m)s), 0)
     + (SELECT count(*) FROM events WHERE merchant_id = %(m)s AND sequence IS NULL)
"""


def outbox_backlog(conn: psycopg.Connection[Any], merchant_id: str) -> int:
    """The merchant's events not delivered yet."""
    row = conn.execute(BACKLOG_QUERY, {"m": merchant_id}).fetchone()
    return int(row[0]) if row else 0


async def outbox_backlog_now(conn: psycopg.AsyncConnection[Any], merchant_id: str) -> int:
    """`outbox_backlog` on an async connection."""
    cursor = await conn.execute(BACKLOG_QUERY, {"m": merchant_id})
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


DEPTH_RATIO = 0.9
CPU_RATIO = 1.0
SECRET = "whsec_bench_outbox_0123456789"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the webhook outbox phase")
    group.add_argument(
        "--outbox-depths", default="1000,100000", help="pending events, shallow,deep"
    )
    group.add_argument("--outbox-merchants", type=int, default=10)
    group.add_argument("--outbox-deliveries", type=int, default=800, help="timed per round")
    group.add_argument("--outbox-rounds", type=int, default=3)


def quick(args: argparse.Namespace) -> None:
    args.outbox_depths, args.outbox_deliveries, args.outbox_rounds = "200,5000", 100, 1


# ---------------------------------------------------------------------- the receiver


async def _serve(port: int) -> None:
    """Answer every POST 200 at once (keep-alive); a GET answers how many POSTs came."""
    received = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"POST"):
                    received += 1
                    body = b""
                else:
                    body = str(received).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    """A receiver process on a free loopback port; its URL. Stopped by its PID."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.outbox", "--receiver", str(port)])
    url = f"http://127.0.0.1:{port}/hooks"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


# ---------------------------------------------------------------------- the phase


def postgres_cpu(database_url: str) -> Callable[[], float]:
    """A clock of the CPU seconds of the PostgreSQL server behind `database_url` (its process
    tree, read from /proc: the bench runs on the server's machine)."""
    with psycopg.connect(database_url) as conn:  # the backend's parent, while it lives
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        postmaster = psutil.Process(int(row[0])).parent()
    assert postmaster is not None

    def seconds() -> float:
        reaped = postmaster.cpu_times()  # the backends that ended, reaped by the postmaster
        total = reaped.children_user + reaped.children_system
        for process in [postmaster, *postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return float(total)

    return seconds


async def _backlog(store: Store, url: str, merchants: int, events: int) -> list[str]:
    """`merchants` merchants sending to `url`, with `events` events each, none delivered."""
    ids = []
    for _ in range(merchants):
        merchant_id = f"mer_outbox_{uuid.uuid4().hex[:10]}"
        await store.create_merchant(merchant_id, "bench outbox")
        await store.set_merchant_webhook(merchant_id, url, SECRET)
        ids.append(merchant_id)
    async with store.pool.connection() as conn:
        await conn.execute(_BACKLOG, {"merchants": ids, "events": events})
        cursors = await conn.execute("SELECT to_regclass('webhook_cursors') IS NOT NULL")
        row = await cursors.fetchone()
        if not (row and row[0]):  # a release before 0024: a delivery row per event
            await conn.execute(
                "INSERT INTO event_deliveries (event_id, merchant_id, sequence)"
                " SELECT id, merchant_id, sequence FROM events WHERE merchant_id = ANY(%s)",
                (ids,),
            )
        await conn.execute("ANALYZE")
    return ids


_BACKLOG = """
WITH made AS (
    INSERT INTO events (id, merchant_id, sequence, type, aggregate_type, aggregate_id, payload)
    SELECT 'evt_' || md5(m || g), m, g, 'wallet.transaction', 'wallet_transaction', 'tx_' || g,
        jsonb_build_object('id', 'evt_' || md5(m || g), 'sequence', g,
            'type', 'wallet.transaction', 'created', extract(epoch FROM now())::bigint,
            'data', jsonb_build_object('object', jsonb_build_object(
                'transaction_id', 'tx_' || g, 'type', 'bet', 'amount', 100, 'currency', 'EUR')))
    FROM unnest(%(merchants)s::text[]) AS m, generate_series(1, %(events)s) AS g
    RETURNING merchant_id
)
UPDATE merchants SET last_event_sequence = %(events)s WHERE id = ANY(%(merchants)s)
"""


async def _timed_drain(
    store: Store, url: str, deliveries: int, cpu: Callable[[], float]
) -> dict[str, Any]:
    """Run a dispatcher until the receiver got `deliveries` more POSTs; rate and CPU."""
    settings = Settings(
        _env_file=None,
        environment="development",
        webhook_delivery_poll_interval_seconds=0.05,
    )
    async with httpx.AsyncClient() as client:
        start_count = int((await client.get(url)).text)
        stop = asyncio.Event()
        dispatcher = WebhookDispatcher(store, settings)
        cpu_start, started, started_at = cpu(), time.monotonic(), time.time()
        task = asyncio.create_task(dispatcher.run(stop))
        count = start_count
        while count - start_count < deliveries and time.monotonic() - started < 120:
            await asyncio.sleep(0.01)
            count = int((await client.get(url)).text)
        elapsed, postgres = time.monotonic() - started, cpu() - cpu_start
        stop.set()
        await asyncio.wait_for(task, timeout=60)
    delivered = count - start_count
    return {
        "window": [started_at, time.time()],
        "delivered": delivered,
        "seconds": elapsed,
        "per_s": delivered / elapsed,
        "postgres_cpu_ms_per_delivery": 1000 * postgres / max(delivered, 1),
    }


async def _phase(
    database_url: str, depths: list[int], merchants: int, deliveries: int, rounds: int, log: Any
) -> dict[str, Any]:
    cpu = postgres_cpu(database_url)
    pool = await open_pool(database_url, min_size=2, max_size=40)
    store = Store(pool)
    runs: dict[int, list[dict[str, Any]]] = {depth: [] for depth in depths}
    try:
        with receiver() as url:
            shallow, deep = min(depths), max(depths)
            for _ in range(rounds):  # a fresh shallow backlog each round, drained after it
                await _backlog(store, url, merchants, shallow // merchants)
                log(f"[bench] outbox: {deliveries} deliveries with {shallow:,} pending")
                runs[shallow].append(await _timed_drain(store, url, deliveries, cpu))
                rest = shallow - runs[shallow][-1]["delivered"]
                if rest > 0:
                    await _timed_drain(store, url, rest, cpu)
            log(f"[bench] outbox: {deep:,} events pending over {merchants} merchants")
            await _backlog(store, url, merchants, deep // merchants)
            for _ in range(rounds):
                log(f"[bench] outbox: {deliveries} deliveries with {deep:,} pending")
                runs[deep].append(await _timed_drain(store, url, deliveries, cpu))
    finally:
        await pool.close()
    figures: dict[str, Any] = {"merchants": merchants, "deliveries": deliveries, "runs": {}}
    for depth, results in runs.items():
        figures["runs"][str(depth)] = {
            "per_s": statistics.median(r["per_s"] for r in results),
            "postgres_cpu_ms_per_delivery": statistics.median(
                r["postgres_cpu_ms_per_delivery"] for r in results
            ),
            "rounds": results,
        }
    shallow, deep_run = figures["runs"][str(min(depths))], figures["runs"][str(max(depths))]
    figures["shallow"], figures["deep"] = min(depths), max(depths)
    figures["ratio"] = deep_run["per_s"] / shallow["per_s"]
    return figures


def outbox_phase(
    database_url: str, args: argparse.Namespace, log: Any = print
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The figures, and the rounds' windows as phases (for the resource samples)."""
    name = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        run_migrations(url)
        depths = sorted(int(d) for d in str(args.outbox_depths).split(","))
        figures = asyncio.run(
            _phase(
                url, depths, args.outbox_merchants, args.outbox_deliveries, args.outbox_rounds, log
            )
        )
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    phases = [
        {"name": f"outbox-{depth}-{n}", "start": r["window"][0], "end": r["window"][1]}
        for depth, run in figures["runs"].items()
        for n, r in enumerate(run["rounds"])
    ]
    return figures, phases


# ---------------------------------------------------------------------- the targets


def targets(figures: dict[str, Any], row: Any) -> list[dict[str, Any]]:
    """The outbox's depth row and the wallet's PostgreSQL CPU row, by `row(name, goal, value,
    limit, ok)` (report's row maker)."""
    rows: list[dict[str, Any]] = []
    if "outbox" not in figures and "wallet" not in figures:
        return rows
    outbox = figures.get("outbox")
    ratio = outbox["ratio"] if outbox else None
    name = (
        f"outbox deliveries/s with {outbox['deep']:,} pending / with {outbox['shallow']:,} pending"
        if outbox
        else "outbox deliveries/s deep / shallow backlog"
    )
    rows.append(
        row(name, f">= {DEPTH_RATIO:g}", ratio, DEPTH_RATIO, ratio is not None and ratio >= 0.9)
    )
    value = postgres_cpu_ratio(figures)
    rows.append(
        row(
            "PostgreSQL CPU per wallet call / per pgbench transfer",
            f"<= {CPU_RATIO:g}",
            value,
            CPU_RATIO,
            value is not None and value <= CPU_RATIO,
        )
    )
    return rows


def postgres_cpu_ratio(figures: dict[str, Any]) -> float | None:
    """PostgreSQL's CPU per call of the engine phase over its CPU per pgbench uniform transfer."""
    wallet = figures.get("wallet") or {}
    per_phase = figures.get("resources", {}).get("per_phase", {})
    engine, pgbench = wallet.get("engine"), wallet.get("pgbench")
    engine_cpu = per_phase.get("wallet-engine", {}).get("cpu_seconds", {}).get("postgres")
    pgbench_cpu = per_phase.get("wallet-pgbench-uniform", {}).get("cpu_seconds", {})
    if not (engine and pgbench and engine_cpu and pgbench_cpu.get("postgres")):
        return None
    per_call = engine_cpu / max(engine["calls"], 1)
    per_transfer = pgbench_cpu["postgres"] / max(pgbench["uniform"]["transfers"], 1)
    return float(per_call / per_transfer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.receiver:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args.receiver))
        return 0
    if not args.database_url:
        parser.error("--database-url is required")
    figures, _ = outbox_phase(args.database_url, args)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
