"""The wallet engine alone, in-process: `WalletEngine.submit` driven by many concurrent sessions.

No HTTP and no API: the group-commit engine the API uses (same number of writers) over its own
merchant's customers, funded first. Each session is a closed loop (submit a call of the mix, wait
for its decision, submit the next), so that the calls in flight are `concurrency`. It reports
calls/s, the batch sizes the writers achieved and, from a second, shorter run under cProfile,
where the engine process's CPU goes.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from bench import profiles
from bench.report import percentiles
from bench.wallet_calls import (
    FUNDING,
    WalletMix,
    create_customers,
    fund_customers,
)
from paysaga.settings import Settings
from wallet.engine import WalletEngine
from wallet.models import Bet, Call, Decision, Rollback, Win

WALLET_WRITERS: int = Settings.model_fields["wallet_writers"].default  # as the API runs

STAGES: list[profiles.Stage] = [
    ("read (lock, load the state)", "wallet/storage.py", "read_state"),
    ("decide (wallet.rules)", "wallet/engine.py", "_decide"),
    ("gather the writes", "wallet/batch_book.py", "gather"),
    ("write (send the statements)", "wallet/storage.py", "send_writes"),
    ("psycopg array dumping", "psycopg/types/array.py", "dump"),
    ("the bench's sessions", "bench/wallet_engine.py", "session"),
]
"""Where a batch's CPU goes, by entry point (see `bench.profiles`)."""

CALL_TYPES: dict[str, type[Bet] | type[Win] | type[Rollback]] = {
    "bet": Bet,
    "win": Win,
    "rollback": Rollback,
}


class MeasuredEngine(WalletEngine):
    """The engine, recording each committed batch's size and duration (read, decide, write,
    commit)."""

    def __init__(self, database_url: str, **kwargs: Any) -> None:
        super().__init__(database_url, **kwargs)
        self.batch_sizes: list[int] = []
        self.batch_ms: list[float] = []

    async def _run_batch(
        self, conn: AsyncConnection[Any], calls: Sequence[Call], first: list[Decision]
    ) -> list[Decision]:
        started = time.perf_counter()
        decisions = await super()._run_batch(conn, calls, first)
        self.batch_ms.append((time.perf_counter() - started) * 1000)
        self.batch_sizes.append(len(calls))
        return decisions


async def _drive(
    engine: MeasuredEngine, mix: WalletMix, merchant_id: str, seconds: float, concurrency: int
) -> dict[str, Any]:
    """`concurrency` closed-loop sessions for `seconds`: calls/s, outcomes, latencies."""
    latencies_ms: list[float] = []
    kinds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

    async def session() -> None:
        while time.monotonic() < deadline:
            kind, body = mix.next_call()
            started = time.perf_counter()
            decision = await engine.submit(CALL_TYPES[kind](merchant_id, **body))
            latencies_ms.append((time.perf_counter() - started) * 1000)
            kinds[kind] += 1
            outcomes[decision.outcome] += 1
            if decision.accepted:
                mix.accepted(kind, body)

    started, started_at = time.monotonic(), time.time()
    await asyncio.gather(*(session() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return {
        "window": [started_at, time.time()],
        "seconds": elapsed,
        "calls": len(latencies_ms),
        "calls_per_s": len(latencies_ms) / elapsed,
        "by_kind": dict(kinds),
        "outcomes": dict(outcomes),
        "latency_ms": percentiles(latencies_ms),
    }


async def _setup(database_url: str, customers: int) -> tuple[str, list[str]]:
    """A merchant of the run and its customers, each funded."""
    merchant_id = f"mer_bench_{uuid.uuid4().hex[:10]}"
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO merchants (id, name) VALUES (%s, %s)", (merchant_id, "bench wallet")
        )
        ids = await create_customers(conn, merchant_id, customers)
        await fund_customers(conn, merchant_id, dict.fromkeys(ids, FUNDING))
    return merchant_id, ids


async def engine_phase(
    database_url: str,
    *,
    customers: int,
    seconds: float,
    concurrency: int,
    profile_seconds: float,
    log: Any = print,
) -> dict[str, Any]:
    """The measured run, then (if `profile_seconds`) a profiled one on fresh calls."""
    merchant_id, ids = await _setup(database_url, customers)
    mix = WalletMix(ids, seed=7)
    log(f"[bench] wallet: engine alone, {concurrency} sessions over {customers} customers")
    engine = MeasuredEngine(database_url, writers=WALLET_WRITERS)
    async with engine:
        await _drive(engine, mix, merchant_id, min(1.0, seconds), concurrency)  # connect, warm
        alone = await _drive(engine, mix, merchant_id, min(2.0, seconds), 1)  # batches of one
        engine.batch_sizes.clear()
        engine.batch_ms.clear()
        retries, splits = engine.stats.retries, engine.stats.splits
        figures = await _drive(engine, mix, merchant_id, seconds, concurrency)
        figures.update(
            {
                "merchant_id": merchant_id,
                "writers": WALLET_WRITERS,
                "concurrency": concurrency,
                "customers": customers,
                "batches": len(engine.batch_sizes),
                "batch_size": percentiles(engine.batch_sizes),
                "batch_ms": percentiles(engine.batch_ms),
                "unloaded_latency_ms": alone["latency_ms"],
                "one_at_a_time": {k: alone[k] for k in ("window", "calls", "calls_per_s")},
                "retries": engine.stats.retries - retries,
                "splits": engine.stats.splits - splits,
            }
        )
        if profile_seconds > 0:
            log("[bench] wallet: engine alone, under cProfile")
            profiler = cProfile.Profile(time.thread_time)  # CPU, not waits
            profiler.enable()
            profiled = await _drive(engine, mix, merchant_id, profile_seconds, concurrency)
            profiler.disable()
            figures["profile"] = profiles.summarize(
                pstats.Stats(profiler), calls=profiled["calls"], stages=STAGES
            )
            figures["profile"]["calls_per_s_profiled"] = profiled["calls_per_s"]
    return figures
