"""`python -m bench` (`make bench`): start a stack, run the baselines, the loads, report.

The payment phases: the bare Temporal workflow (sequential, then fired at once, then the open-loop
ramp of `bench.ramp`, then the histories of a sample), the database baselines, the load client
(`bench.load`: unloaded deposits, deposits fired at once, the deposit ramp, deposits at 80% of the
saturation rate, the mixed load), the histories of a sample of the deposits; then the game
wallet's (`bench.wallet_phase`): pgbench, the wallet engine alone, wallet calls through the API.
`bench.report` makes the figures: CPU per payment by process, tasks per saga, the targets.

Everything it starts (the stack's processes, the load client) is stopped by PID at the end, on
Ctrl-C too. With --api-url it targets a running stack instead and starts only the load client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench import histories, ramp, report, wallet_phase, wallet_report
from bench.baselines import database_baselines, temporal_baseline
from bench.stack import BenchStack, start_stack
from paysaga.settings import DEV_MERCHANT_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent


class ResourceSampler(threading.Thread):
    """CPU seconds and RSS of named processes (with their descendants), every `interval` s."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._pids: dict[str, tuple[int, bool]] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def watch(self, name: str, pid: int, tree: bool = True) -> None:
        """Measure `pid`, with its descendants unless `tree` is false."""
        with self._lock:
            self._pids[name] = (pid, tree)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        with self._lock:
            pids = dict(self._pids)
        procs = {}
        for name, (pid, tree) in pids.items():
            figures = _usage(pid, tree)
            if figures is not None:
                procs[name] = figures
        machine = psutil.cpu_times()  # every process's, ours and the other users' of the box
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        self.samples.append(
            {"t": time.time(), "procs": procs, "machine_cpu": busy, "machine_steal": machine.steal}
        )

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.sample()


def _usage(pid: int, tree: bool) -> dict[str, float] | None:
    """CPU seconds and RSS of a process, or of its tree (reaped children and live descendants)."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        cpu = times.user + times.system
        rss = root.memory_info().rss
        if tree:
            cpu += times.children_user + times.children_system
        for child in root.children(recursive=True) if tree else []:
            try:
                t = child.cpu_times()
                cpu += t.user + t.system
                rss += child.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        return None
    return {"cpu": cpu, "rss": float(rss)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of mixed load")
    parser.add_argument("--rate", type=float, default=4.0, help="payments/s of the mixed load")
    parser.add_argument("--quick", action="store_true", help="a few seconds of everything")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench-results")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (own stack)")
    parser.add_argument(
        "--api-workers", type=int, default=1, help="API processes, each its own wallet engine"
    )
    parser.add_argument(
        "--psp-webhook-delay",
        type=float,
        default=0.0,
        help="the sandbox PSP's simulated settlement delay (own stack); 0 measures paysaga only",
    )
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--unloaded", type=int, default=20, help="sequential deposits")
    parser.add_argument("--saturation", type=int, default=200, help="deposits fired at once")
    parser.add_argument("--baseline-concurrent", type=int, default=200)
    parser.add_argument("--baseline-sequential", type=int, default=30)
    parser.add_argument("--db-seconds", type=float, default=10.0, help="per database baseline")
    parser.add_argument("--db-accounts", type=int, default=1000)
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--poll-budget",
        type=float,
        default=20.0,
        help="GETs/s at most, all together, following the saturation's and the ramp's deposits",
    )
    parser.add_argument(
        "--sustain-fraction",
        type=float,
        default=0.8,
        help="deposits at this x the measured saturation rate, for the API accept p99 there",
    )
    parser.add_argument("--sustain-seconds", type=float, default=15.0)
    parser.add_argument(
        "--history-sample",
        type=int,
        default=20,
        help="completed deposit and bare workflows whose histories are counted",
    )
    ramp.add_arguments(parser)
    wallet_phase.add_arguments(parser)
    target = parser.add_argument_group("a running stack instead of our own")
    target.add_argument("--api-url")
    target.add_argument("--api-key", default=DEV_MERCHANT_KEY)
    target.add_argument("--temporal-address", help="for the bare workflow baseline")
    target.add_argument("--temporal-namespace", default="default")
    target.add_argument(
        "--database-url",
        help="for the database baselines and the wallet phase (writes bench schemas, customers"
        " of the key's merchant and ledger rows)",
    )
    target.add_argument(
        "--watch", action="append", default=[], metavar="NAME=PID", help="a process to measure"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rate = min(args.duration, 4.0), min(args.rate, 5.0)
        args.customers, args.unloaded, args.saturation = 4, 3, 10
        args.baseline_concurrent, args.baseline_sequential = 10, 3
        args.db_seconds, args.db_accounts = 0.5, 20
        args.ramp_step_seconds, args.ramp_factor, args.ramp_max_steps = 1.5, 2.0, 2
        args.ramp_drain_timeout, args.ramp_max_p50_ms = 30.0, 1e12  # every step runs
        args.ramp_knee_ratio = 0.0
        args.sustain_seconds, args.history_sample = 2.0, 5
        wallet_phase.quick(args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background may have ignored SIGINT.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack: BenchStack | None = None
    client: subprocess.Popen[bytes] | None = None
    sampler = ResourceSampler()
    try:
        if args.api_url:
            api_url, temporal_address, database_url = (
                args.api_url,
                args.temporal_address,
                args.database_url,
            )
        else:
            stack = start_stack(
                workers=args.workers,
                api_workers=args.api_workers,
                psp_webhook_delay=args.psp_webhook_delay,
            )
            api_url, temporal_address, database_url = (
                stack.api_url,
                stack.temporal_address,
                stack.database_url,
            )
            for name, pid in stack.pids().items():
                sampler.watch(name, pid)
        for spec in args.watch:
            name, _, pid = spec.partition("=")
            sampler.watch(name, int(pid))
        # Alone: its children are the stack and the load client, measured on their own.
        sampler.watch("bench (baselines)", os.getpid(), tree=False)
        sampler.start()

        figures: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {
                "cpus": os.cpu_count(),
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "config": {k: str(v) for k, v in vars(args).items() if k != "api_key"},
            "own_stack": stack is not None,
            "baselines": {},
        }
        phases: list[dict[str, Any]] = []
        if temporal_address:
            print("[bench] baseline: bare Temporal workflow", flush=True)
            figures["baselines"]["temporal"], temporal_phases = asyncio.run(
                temporal_baseline(
                    temporal_address,
                    concurrent=args.baseline_concurrent,
                    sequential=args.baseline_sequential,
                    namespace=args.temporal_namespace,
                    ramp_config=ramp.config_from(args),
                    history_sample=args.history_sample,
                    mark=sampler.sample,
                    log=lambda m: print(m, flush=True),
                )
            )
            phases += temporal_phases
            figures["workflow_histories"] = {
                "bare": figures["baselines"]["temporal"].pop("histories")
            }
        if database_url:
            started = time.time()
            figures["baselines"]["database"] = asyncio.run(
                database_baselines(
                    database_url,
                    accounts=args.db_accounts,
                    seconds=args.db_seconds,
                    log=lambda m: print(m, flush=True),
                )
            )
            phases.append({"name": "baseline-database", "start": started, "end": time.time()})

        print(f"[bench] load client: {args.rate}/s mixed for {args.duration} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="paysaga-bench-load-") as tmp:
            load_out = Path(tmp) / "load.json"
            client = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.load",
                    *("--api-url", api_url, "--api-key", args.api_key, "--out", str(load_out)),
                    *("--rate", str(args.rate), "--duration", str(args.duration)),
                    *("--customers", str(args.customers), "--unloaded", str(args.unloaded)),
                    *("--saturation", str(args.saturation), "--pollers", str(args.pollers)),
                    *("--poll-interval", str(args.poll_interval)),
                    *("--poll-budget", str(args.poll_budget)),
                    *("--sustain-fraction", str(args.sustain_fraction)),
                    *("--sustain-seconds", str(args.sustain_seconds)),
                    *ramp.config_from(args).as_args(),
                    *(["--no-progress"] if args.no_progress else []),
                ],
                cwd=REPO_ROOT,
                start_new_session=True,  # Ctrl-C reaches us; we stop it
            )
            sampler.watch("load-client", client.pid)
            if client.wait() != 0:
                raise RuntimeError(f"the load client exited with status {client.returncode}")
            load = json.loads(load_out.read_text())
        phases += load["phases"]
        client_phases = {p["name"]: "load-client" for p in load["phases"]}
        if temporal_address:  # after the load: Temporal's reading them is not measured
            deposit_ids = [
                r["payment_id"] for r in load["saturation"] if r["status"] == "succeeded"
            ]
            figures["workflow_histories"]["deposit"] = asyncio.run(
                histories.fetch(
                    temporal_address,
                    args.temporal_namespace,
                    histories.sample(deposit_ids, args.history_sample),
                )
            )
        if database_url:
            figures["wallet"], wallet_phases = wallet_phase.run_wallet_phase(
                args,
                api_url=api_url,
                database_url=database_url,
                stack=stack,
                watch=sampler.watch,
                log=lambda m: print(m, flush=True),
            )
            phases += wallet_phases
            client_phases |= {
                p["name"]: p.get("client", wallet_phase.LOAD_CLIENT)
                for p in wallet_phases
                if "cpu_start" in p
            }
        sampler.stop()

        warmup = min(5.0, 0.2 * args.duration)
        figures["phases"] = phases
        figures["load"] = report.load_figures(load, warmup)
        figures["time_series"] = report.time_series(load["mixed"])
        figures["resources"] = report.resource_figures(sampler.samples, phases)
        for phase in phases:  # the clients' own clock of their CPU: exact, not sampled
            if phase["name"] not in client_phases:
                continue
            client_name = client_phases[phase["name"]]
            cpu = phase["cpu_end"] - phase["cpu_start"]
            per_phase = figures["resources"]["per_phase"][phase["name"]]
            per_phase["cpu_seconds"][client_name] = round(cpu, 3)
            per_phase["cpu_percent_of_one_core"][client_name] = round(
                100 * cpu / max(per_phase["wall_seconds"], 1e-9), 1
            )
        if "wallet" in figures:
            wallet_report.annotate(figures["wallet"], figures["resources"]["per_phase"])
        report.add_payment_figures(figures)
        figures["targets"] = report.targets(figures)
        figures["host"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        figures["raw"] = {"load": load, "resource_samples": sampler.samples}

        stamp = time.strftime("%Y%m%d-%H%M%S")
        json_path, png_path = report.write_results(figures, args.out_dir, stamp)
        print()
        print(report.summary_text(figures))
        print(f"\n[bench] {json_path}\n[bench] {png_path}", flush=True)
        return 0
    except KeyboardInterrupt:
        print("\n[bench] interrupted", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if client is not None and client.poll() is None:
                client.terminate()
                try:
                    client.wait(10)
                except subprocess.TimeoutExpired:
                    client.kill()
                    client.wait()
            if sampler.is_alive():
                sampler.stop()
        finally:
            if stack is not None:
                print("[bench] stopping the stack", flush=True)
                stack.stop()


if __name__ == "__main__":
    sys.exit(main())
