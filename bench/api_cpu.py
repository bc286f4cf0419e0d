"""`python -m bench.api_cpu`: the API's CPU per wallet call, by process CPU time, on a busy box.

Wall-clock figures mean little on a shared machine; the CPU a process spends per call does not
depend on who else runs. This starts the bench's own stack (`--api-workers` API processes),
funds customers, sends `--calls` calls of the wallet mix at `--rate` (open loop, after a warm-up)
and reads the CPU time (user + system) of the API's processes, and of PostgreSQL's, before and
after: CPU ms per answered call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import psutil

from bench import wallet_load
from bench.http1 import JsonPoster
from bench.stack import start_stack
from bench.wallet_calls import WalletMix
from bench.wallet_phase import profile_api
from paysaga.settings import DEV_MERCHANT_KEY


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        pass
    return total


async def measure(api_url: str, database_url: str, pids: dict[str, int], args: Any) -> Any:
    load_args = wallet_load.parse_args(
        [
            *("--api-url", api_url, "--database-url", database_url, "--out", "-"),
            *("--customers", str(args.customers), "--drain-timeout", "30"),
        ]
    )
    _merchant_id, customers, hot = await wallet_load.setup(load_args)
    mix = WalletMix(customers, hot, 0.1, seed=1)
    poster = JsonPoster(api_url, load_args.api_key, connections=64)
    ramp = wallet_load.Ramp(poster, mix, load_args)
    try:
        await ramp.step("warm-up", args.rate, 2.0)
        before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        step = await ramp.step("measured", args.rate, args.calls / args.rate)
        after = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    finally:
        await poster.close()
    answered = max(step["answered"], 1)
    return {
        "api_workers": args.api_workers,
        "rate": args.rate,
        "calls": step["sent"],
        "answered": step["answered"],
        "errors": step["errors"],
        "error_samples": step["error_samples"],
        "latency_ms": step["latency_ms"],
        "cpu_ms_per_call": {
            name: round(1000 * (after[name] - before[name]) / answered, 3) for name in pids
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_cpu", description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument(
        "--profile-seconds", type=float, default=0.0, help="then a second API under cProfile"
    )
    args = parser.parse_args(argv)
    stack = start_stack(
        workers=1, api_workers=args.api_workers, log=lambda m: print(m, file=sys.stderr)
    )
    try:
        all_pids = stack.pids()
        pids = {name: all_pids[name] for name in ("api", "postgres")}
        result = asyncio.run(measure(stack.api_url, stack.database_url, pids, args))
        if args.profile_seconds > 0:
            profile_args = argparse.Namespace(
                wallet_profile_rate=args.rate,
                wallet_profile_seconds=args.profile_seconds,
                api_key=DEV_MERCHANT_KEY,
            )
            log = lambda message: print(message, file=sys.stderr)  # noqa: E731
            result["profile"] = profile_api(stack, stack.database_url, profile_args, log)
    finally:
        stack.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
