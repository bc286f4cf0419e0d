"""Baselines on the same servers: a bare Temporal workflow, raw psycopg transfers, the ledger engine.

Each tells what the hardware and the servers can do with nothing of paysaga on top, so that the
paysaga figures read as a fraction of it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker

from bench import histories, ramp
from bench.noop_workflow import STEPS, NoopWorkflow, noop
from bench.report import percentiles
from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.models import AccountKind, LineSpec
from paysaga.temporal_connection import connect_temporal

CONNECTIONS = 4
RAW_SCHEMA = "paysaga_bench"


async def temporal_baseline(
    temporal_address: str,
    *,
    concurrent: int,
    sequential: int,
    namespace: str = "default",
    ramp_config: ramp.RampConfig | None = None,
    history_sample: int = 0,
    mark: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = lambda _m: None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Unloaded latency of sequential workflows; throughput of `concurrent` fired at once; the
    open-loop ramp (`bench.ramp`); the histories of a sample of the concurrent ones. With the
    figures, the phases (wall-clock windows) to cut the CPU samples by; `mark` takes a CPU sample
    at each edge, so that a phase of a fraction of a second is measured too."""
    client = await connect_temporal(address=temporal_address, namespace=namespace)
    task_queue = f"bench-noop-{uuid.uuid4()}"
    phases: list[dict[str, Any]] = []

    def phase(name: str, started: float) -> None:
        mark()
        phases.append({"name": name, "start": started, "end": time.time()})

    async with Worker(client, task_queue=task_queue, workflows=[NoopWorkflow], activities=[noop]):
        run_id = uuid.uuid4().hex[:8]

        async def one(n: int) -> float:
            await client.execute_workflow(
                NoopWorkflow.run, STEPS, id=f"bench-noop-{run_id}-{n}", task_queue=task_queue
            )
            return time.monotonic()

        # Warm-up: the first workflow pays for the worker's first polls.
        whole_started = time.time()
        await one(-1)
        mark()
        sequential_started = time.time()
        latencies = []
        for n in range(sequential):
            started = time.monotonic()
            await one(n)
            latencies.append(time.monotonic() - started)
        phase("baseline-temporal-sequential", sequential_started)

        concurrent_started = time.time()
        started = time.monotonic()
        finished = await asyncio.gather(*(one(sequential + n) for n in range(concurrent)))
        elapsed = max(finished) - started
        phase("baseline-temporal-concurrent", concurrent_started)
        phases.insert(0, {"name": "baseline-temporal", "start": whole_started, "end": time.time()})
        figures: dict[str, Any] = {
            "activities": STEPS,
            "concurrent": concurrent,
            "throughput_per_s": concurrent / elapsed,
            "saturation_seconds": elapsed,
            "unloaded_runs": sequential,
            "unloaded_latency_ms": percentiles([x * 1000 for x in latencies]),
        }
        if ramp_config is not None:
            steps = []
            for rate in ramp_config.rates():
                name = f"bare-ramp-{rate:g}"
                log(f"[bench] baseline: bare workflow ramp, {rate:g}/s")
                mark()
                step_started = time.time()
                step = await _bare_step(client, task_queue, f"{run_id}-{name}", rate, ramp_config)
                phase(name, step_started)
                step["phase"] = name
                step["knee_reason"] = ramp.knee_reason(step, ramp_config)
                steps.append(step)
                if step["knee_reason"]:
                    break
            figures["ramp"] = ramp.summarize(steps, ramp_config)
    ids = [f"bench-noop-{run_id}-{sequential + n}" for n in range(concurrent)]
    figures["histories"] = await histories.histories(client, histories.sample(ids, history_sample))
    return figures, phases


async def _bare_step(
    client: Client, task_queue: str, prefix: str, rate: float, config: ramp.RampConfig
) -> dict[str, Any]:
    """Bare workflows started at `rate`/s for the step's seconds, whatever their ends take; each
    completes when its result reaches us."""
    scheduled: list[float] = []
    completed: list[tuple[float, float]] = []
    lags: list[float] = []
    errors: list[str] = []

    async def one(n: int, due: float) -> None:
        lags.append(time.time() - due)
        try:
            handle = await client.start_workflow(
                NoopWorkflow.run, STEPS, id=f"bench-noop-{prefix}-{n}", task_queue=task_queue
            )
            await handle.result()
        except Exception as exc:  # a lost workflow is a figure of the step, not a crash
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        completed.append((due, time.time()))

    tasks = []
    start = time.time()
    for n in range(max(1, int(rate * config.step_seconds))):
        due = start + n / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        scheduled.append(due)
        tasks.append(asyncio.create_task(one(n, due)))
    _done, pending = await asyncio.wait(tasks, timeout=config.drain_timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    return ramp.step_figures(
        rate,
        config.step_seconds,
        sent=len(tasks),
        scheduled=scheduled,
        completed=completed,
        send_lag_s=lags,
        errors=len(errors),
        error_samples=errors,
    )


async def _run_for(
    seconds: float, workers: int, transfer: Callable[[int, random.Random], Awaitable[None]]
) -> dict[str, Any]:
    """`workers` loops calling `transfer` until `seconds` have passed; transfers/s and latency."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def loop(n: int) -> None:
        rng = random.Random(n)
        while time.monotonic() < deadline:
            started = time.monotonic()
            await transfer(n, rng)
            latencies.append(time.monotonic() - started)

    started = time.monotonic()
    await asyncio.gather(*(loop(n) for n in range(workers)))
    elapsed = time.monotonic() - started
    return {
        "transfers": len(latencies),
        "seconds": elapsed,
        "transfers_per_s": len(latencies) / elapsed,
        "latency_ms": percentiles([x * 1000 for x in latencies]),
    }


def _pair(rng: random.Random, accounts: int, hot: bool) -> tuple[int, int]:
    """Two distinct account numbers in 1..accounts; with `hot`, account 1 is always one of them."""
    a = 1 if hot else rng.randint(1, accounts)
    b = rng.randint(1, accounts)
    while b == a:
        b = rng.randint(1, accounts)
    return (a, b) if rng.random() < 0.5 else (b, a)


async def raw_transfers(
    database_url: str, *, accounts: int, seconds: float, hot: bool
) -> dict[str, Any]:
    """Transfers in plain psycopg: lock two rows in id order, two entries, two balance updates."""
    async with await AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute(f"DROP SCHEMA IF EXISTS {RAW_SCHEMA} CASCADE")
        await admin.execute(f"CREATE SCHEMA {RAW_SCHEMA}")
        await admin.execute(
            f"CREATE TABLE {RAW_SCHEMA}.accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)"
        )
        await admin.execute(
            f"CREATE TABLE {RAW_SCHEMA}.entries (id bigserial PRIMARY KEY,"
            " account_id bigint NOT NULL REFERENCES paysaga_bench.accounts (id),"
            " amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
        await admin.execute(
            f"INSERT INTO {RAW_SCHEMA}.accounts SELECT g, 0 FROM generate_series(1, %s) g",
            (accounts,),
        )
    connections = [await AsyncConnection.connect(database_url) for _ in range(CONNECTIONS)]
    try:

        async def transfer(n: int, rng: random.Random) -> None:
            debit, credit = _pair(rng, accounts, hot)
            amount = rng.randint(1, 1000)
            conn = connections[n]
            async with conn.transaction():
                await conn.execute(
                    f"SELECT id FROM {RAW_SCHEMA}.accounts WHERE id = ANY(%s)"
                    " ORDER BY id FOR UPDATE",
                    ([debit, credit],),
                )
                await conn.execute(
                    f"INSERT INTO {RAW_SCHEMA}.entries (account_id, amount)"
                    " VALUES (%s, %s), (%s, %s)",
                    (debit, -amount, credit, amount),
                )
                await conn.execute(
                    f"UPDATE {RAW_SCHEMA}.accounts SET balance = balance + %s WHERE id = %s",
                    (-amount, debit),
                )
                await conn.execute(
                    f"UPDATE {RAW_SCHEMA}.accounts SET balance = balance + %s WHERE id = %s",
                    (amount, credit),
                )

        return await _run_for(seconds, CONNECTIONS, transfer)
    finally:
        for conn in connections:
            await conn.close()
        async with await AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute(f"DROP SCHEMA IF EXISTS {RAW_SCHEMA} CASCADE")


async def ledger_transfers(
    database_url: str, *, accounts: int, seconds: float, hot: bool
) -> dict[str, Any]:
    """The same transfers through `Ledger.post_transaction` (idempotency key, checks, balances)."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=CONNECTIONS, max_size=CONNECTIONS, open=False
    )
    await pool.open(wait=True)
    run_id = uuid.uuid4().hex[:8]
    owner = f"bench-{run_id}-{'hot' if hot else 'uniform'}"
    kind = AccountKind.suspense  # may go negative: no funding step needed, like the raw table
    try:
        ledger = Ledger(pool)
        for n in range(1, accounts + 1):  # created before the clock starts, like the raw rows
            await ledger.account(DEV_MERCHANT_ID, f"{owner}-{n}", kind, "EUR")
        counter = 0

        async def transfer(n: int, rng: random.Random) -> None:
            nonlocal counter
            counter += 1
            debit, credit = _pair(rng, accounts, hot)
            amount = rng.randint(1, 1000)
            await ledger.post_transaction(
                f"{owner}-tx-{counter}",
                [
                    LineSpec(DEV_MERCHANT_ID, f"{owner}-{debit}", kind, "EUR", -amount),
                    LineSpec(DEV_MERCHANT_ID, f"{owner}-{credit}", kind, "EUR", amount),
                ],
                "bench transfer",
            )

        return await _run_for(seconds, CONNECTIONS, transfer)
    finally:
        await pool.close()


async def database_baselines(
    database_url: str, *, accounts: int, seconds: float, log: Callable[[str], None]
) -> dict[str, Any]:
    """Raw psycopg and the ledger engine, uniform and with one hot account; their ratios."""
    results: dict[str, Any] = {"connections": CONNECTIONS, "accounts": accounts}
    for shape, hot in (("uniform", False), ("hot", True)):
        log(f"[bench] baseline: raw psycopg transfers, {shape}")
        raw = await raw_transfers(database_url, accounts=accounts, seconds=seconds, hot=hot)
        log(f"[bench] baseline: ledger engine transfers, {shape}")
        engine = await ledger_transfers(database_url, accounts=accounts, seconds=seconds, hot=hot)
        results[shape] = {
            "raw": raw,
            "ledger": engine,
            "ratio": engine["transfers_per_s"] / raw["transfers_per_s"],
        }
    return results
