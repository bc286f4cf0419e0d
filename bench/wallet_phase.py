"""The wallet phase of `make bench`: pgbench, the engine alone, the HTTP ramp, the API's profile.

Run after the payment phases, on the same stack: its PostgreSQL for pgbench and the engine, its
API for the HTTP ramp (from a load process of its own, `bench.wallet_load`) and, with our own
stack, a second API under cProfile (`bench.profiled_api`) to say where a wallet call's CPU goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bench import profiles, wallet_report
from bench.outbox import outbox_backlog
from bench.pgbench import pgbench_baselines
from bench.stack import BenchStack
from bench.wallet_engine import engine_phase
from devtools.stack import free_port, wait_for_http

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RATES = "100,200,300,400,500,600,800,1000,1200,1500"
LOAD_CLIENT = "wallet-load-client"
API_STAGES: list[profiles.Stage] = [
    ("route matching", "fastapi/routing.py", "matches"),
    ("dependencies and body validation", "fastapi/dependencies/utils.py", "solve_dependencies"),
    ("sync dependencies via the thread pool", "starlette/concurrency.py", "run_in_threadpool"),
    ("the game call's lean handler, all of it", "api/game_calls.py", "__call__"),
    ("the answer (pydantic-core)", "api/game_calls.py", "decision_response"),
    ("wallet engine writers", "wallet/engine.py", "_writer"),
    ("psycopg array dumping", "psycopg/types/array.py", "dump"),
    ("logging", "logging/__init__.py", "_log"),
]
"""Where a wallet call's CPU goes in the API, by entry point (see `bench.profiles`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the game wallet phase")
    group.add_argument("--wallet-seconds", type=float, default=10.0, help="pgbench, engine runs")
    group.add_argument("--wallet-customers", type=int, default=1000)
    group.add_argument("--wallet-concurrency", type=int, default=256, help="engine sessions")
    group.add_argument("--wallet-rates", default=DEFAULT_RATES, help="HTTP ramp, calls/s")
    group.add_argument("--wallet-step-seconds", type=float, default=8.0)
    group.add_argument("--wallet-hot-share", type=float, default=0.1)
    group.add_argument("--wallet-report-rate", type=float, default=200.0)
    group.add_argument("--wallet-unloaded-calls", type=int, default=100, help="one at a time")
    group.add_argument(
        "--wallet-stop-p99-ms", type=float, default=50.0, help="the ramp ends past this p99"
    )
    group.add_argument(
        "--wallet-profile-seconds", type=float, default=4.0, help="cProfile runs; 0: none"
    )
    group.add_argument("--wallet-profile-rate", type=float, default=200.0)
    group.add_argument(
        "--wallet-drain-timeout", type=float, default=120.0, help="for the webhook outbox"
    )


def quick(args: argparse.Namespace) -> None:
    """Tiny parameters: every step runs, in a few seconds."""
    args.wallet_seconds, args.wallet_customers, args.wallet_concurrency = 1.0, 20, 16
    args.wallet_rates, args.wallet_step_seconds, args.wallet_report_rate = "20,40", 1.0, 20.0
    args.wallet_unloaded_calls, args.wallet_drain_timeout = 10, 10.0
    args.wallet_stop_p99_ms = 1e12  # every step, however slow a busy machine makes them
    args.wallet_profile_seconds, args.wallet_profile_rate = 1.0, 20.0


def run_wallet_phase(
    args: argparse.Namespace,
    *,
    api_url: str,
    database_url: str,
    stack: BenchStack | None,
    watch: Callable[[str, int], None],
    log: Callable[[str], None],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every wallet figure, and the phases (wall-clock windows) to sample resources by."""
    wallet: dict[str, Any] = {}
    phases: list[dict[str, Any]] = []
    settle(database_url)
    wallet["pgbench"] = pgbench_baselines(
        database_url, accounts=args.wallet_customers, seconds=args.wallet_seconds, log=log
    )
    for shape, run in wallet["pgbench"].items():
        start, end = run["window"]
        phases.append(
            {
                "name": f"wallet-pgbench-{shape}",
                "start": start,
                "end": end,
                "client": "pgbench",  # its CPU, measured by the bench when it reaped it
                "cpu_start": 0.0,
                "cpu_end": run["client_cpu_seconds"],
            }
        )
    engine = asyncio.run(
        engine_phase(
            database_url,
            customers=args.wallet_customers,
            seconds=args.wallet_seconds,
            concurrency=args.wallet_concurrency,
            profile_seconds=args.wallet_profile_seconds,
            log=log,
        )
    )
    wallet["engine"] = engine
    phases.append(
        {"name": "wallet-engine", "start": engine["window"][0], "end": engine["window"][1]}
    )
    alone = engine["one_at_a_time"]["window"]
    phases.append({"name": "wallet-engine-one-at-a-time", "start": alone[0], "end": alone[1]})

    log("[bench] wallet: waiting for the webhook dispatcher to drain the engine's events")
    wallet["outbox_drain"] = drain_outbox(
        database_url, engine["merchant_id"], timeout=args.wallet_drain_timeout
    )
    start, end = wallet["outbox_drain"]["window"]
    phases.append({"name": "wallet-outbox-drain", "start": start, "end": end})
    settle(database_url)
    log(f"[bench] wallet: HTTP ramp at {args.wallet_rates} calls/s")
    load = run_wallet_load(
        api_url,
        database_url,
        [
            *("--customers", str(args.wallet_customers)),
            *("--hot-share", str(args.wallet_hot_share)),
            *("--rates", args.wallet_rates, "--step-seconds", str(args.wallet_step_seconds)),
            *("--report-rate", str(args.wallet_report_rate)),
            *("--stop-p99-ms", str(args.wallet_stop_p99_ms)),
            *("--unloaded-calls", str(args.wallet_unloaded_calls)),
            *(["--no-progress"] if args.no_progress else []),
        ],
        watch,
        args.api_key,
    )
    wallet["http"] = wallet_report.http_figures(load)
    phases += load["phases"]
    if stack is not None and args.wallet_profile_seconds > 0:
        wallet["api_profile"] = profile_api(stack, database_url, args, log)
    return wallet, phases


def drain_outbox(database_url: str, merchant_id: str, *, timeout: float) -> dict[str, Any]:
    """Wait until the worker's webhook dispatcher has handled the engine merchant's pending
    deliveries (thousands), so that the HTTP ramp does not measure it catching up; how long."""
    started = time.time()
    with psycopg.connect(database_url, autocommit=True) as conn:
        pending_at_start = pending = outbox_backlog(conn, merchant_id)
        while pending and time.time() - started < timeout:
            time.sleep(0.25)
            pending = outbox_backlog(conn, merchant_id)
    return {
        "pending_at_start": pending_at_start,
        "pending_at_end": pending,
        "seconds": time.time() - started,
        "window": [started, time.time()],
    }


def settle(database_url: str) -> None:
    """Vacuum, analyze and checkpoint after a phase's writes, so that the next phase does not
    measure autovacuum and a checkpoint catching up with them."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")  # a table we may not vacuum is skipped with a warning
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):  # a running stack's role
            conn.execute("CHECKPOINT")


def run_wallet_load(
    api_url: str,
    database_url: str,
    options: list[str],
    watch: Callable[[str, int], None],
    api_key: str,
) -> dict[str, Any]:
    """`python -m bench.wallet_load` with `options`; its JSON."""
    with tempfile.TemporaryDirectory(prefix="paysaga-bench-wallet-") as tmp:
        out = Path(tmp) / "wallet-load.json"
        client = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.wallet_load",
                *("--api-url", api_url, "--api-key", api_key),
                *("--database-url", database_url, "--out", str(out)),
                *options,
            ],
            cwd=REPO_ROOT,
            start_new_session=True,  # Ctrl-C reaches the bench; it stops the client
        )
        watch(LOAD_CLIENT, client.pid)
        try:
            if client.wait() != 0:
                raise RuntimeError(f"the wallet load client exited with {client.returncode}")
        finally:
            if client.poll() is None:
                client.terminate()
                client.wait(10)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def profile_api(
    stack: BenchStack, database_url: str, args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, Any]:
    """A second API of the stack under cProfile, sent one step of the mix; where its CPU goes."""
    port = free_port()
    rate, seconds = args.wallet_profile_rate, args.wallet_profile_seconds
    log(f"[bench] wallet: the API under cProfile, {rate:g} calls/s for {seconds:g} s")
    with tempfile.TemporaryDirectory(prefix="paysaga-bench-profile-") as tmp:
        out = Path(tmp) / "api.prof"
        # One process: cProfile and its signals are per process.
        env = {**stack.env, "PAYSAGA_API_PORT": str(port), "PAYSAGA_API_WORKERS": "1"}
        process = stack.group.start(
            "api-profiled", [sys.executable, "-m", "bench.profiled_api", str(out)], env
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            load = run_wallet_load(
                f"http://127.0.0.1:{port}",
                database_url,
                [
                    *("--customers", "100", "--rates", str(rate), "--step-seconds", str(seconds)),
                    *("--warmup-seconds", "1", "--report-rate", "0", "--stop-p99-ms", "1e12"),
                    *("--unloaded-calls", "0"),
                    *("--profile-pid", str(process.pid), "--no-progress"),
                ],
                lambda _name, _pid: None,
                args.api_key,
            )
        finally:
            stack.group.stop("api-profiled")  # after SIGUSR2: the stats are written
        step = load["steps"][0]
        profile = profiles.summarize(
            pstats.Stats(str(out)), calls=step["answered"], stages=API_STAGES
        )
    profile.update(
        {
            "rate": rate,
            "seconds": seconds,
            "answered_per_s": step["answered_per_s"],
            "latency_ms_profiled": step["latency_ms"],
        }
    )
    return profile
