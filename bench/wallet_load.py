"""`python -m bench.wallet_load`: game calls through the HTTP API, open loop at rising rates.

A process of its own (like `bench.load` for payments). Setup: the customers (through the API)
plus one hot customer, funded straight in the ledger (`--database-url`), as deposits would. Then
a short warm-up and one step per rate of `--rates`: calls of the `WalletMix` (70% bets, 30% wins
and rollbacks; the hot customer takes `--hot-share` of the bets) sent on schedule whatever the
answers take, each timed from its scheduled moment to its answer. The ramp stops after the first
step whose p99 passes `--stop-p99-ms` (but runs `--report-rate` in any case). It writes each step's figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from psycopg import AsyncConnection

from bench.http1 import HttpError, JsonPoster
from bench.outbox import outbox_backlog_now
from bench.report import percentiles
from bench.wallet_calls import FUNDING, HOT_FUNDING, WalletMix, fund_customers
from paysaga.settings import DEV_MERCHANT_KEY

PATHS = {"bet": "/v1/wallet/bets", "win": "/v1/wallet/wins", "rollback": "/v1/wallet/rollbacks"}
HELD_P99_MS = 20.0
HELD_ERROR_SHARE = 0.001
HELD_THROUGHPUT_SHARE = 0.95


@dataclass
class CallRecord:
    """One call as the client saw it; monotonic seconds."""

    kind: str
    scheduled: float
    sent: float = 0.0
    answered: float | None = None
    status: int | None = None
    error: str | None = None


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


class Ramp:
    """The steps of the open loop, and the phases (wall clock, own CPU) the parent samples by."""

    def __init__(self, poster: JsonPoster, mix: WalletMix, args: argparse.Namespace) -> None:
        self.poster, self.mix, self.args = poster, mix, args
        self.phases: list[dict[str, Any]] = []
        self.series: list[dict[str, Any]] = []
        self.origin = time.monotonic()

    async def step(self, name: str, rate: float, seconds: float) -> dict[str, Any]:
        phase = {"name": name, "start": time.time(), "cpu_start": _cpu()}
        records, started = await self._open_loop(rate, seconds)
        phase.update({"end": time.time(), "cpu_end": _cpu()})
        self.phases.append(phase)
        self.series += _per_second(records, started - self.origin, rate)
        return step_figures(records, rate, seconds, started)

    async def _open_loop(self, rate: float, seconds: float) -> tuple[list[CallRecord], float]:
        records: list[CallRecord] = []
        tasks: set[asyncio.Task[None]] = set()
        total = int(rate * seconds)
        start = time.monotonic()
        while len(records) < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while len(records) < due:
                record = CallRecord("", start + len(records) / rate)
                records.append(record)
                task = asyncio.create_task(self._call(record))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, start + len(records) / rate - time.monotonic()))
        if tasks:
            _done, pending = await asyncio.wait(set(tasks), timeout=self.args.drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return records, start

    async def _call(self, record: CallRecord) -> None:
        kind, body = self.mix.next_call()
        record.kind, record.sent = kind, time.monotonic()
        try:
            answer = await self.poster.post(PATHS[kind], body)
        except HttpError as exc:
            record.error = str(exc)[:200]
            return
        except asyncio.CancelledError:
            record.error = f"no answer within the drain timeout ({self.args.drain_timeout} s)"
            raise
        record.answered, record.status = time.monotonic(), answer.status
        if answer.status == 200:
            self.mix.accepted(kind, body)
        else:
            record.error = f"{answer.status}: {answer.body[:200].decode(errors='replace')}"


def step_figures(
    records: list[CallRecord], rate: float, seconds: float, started: float
) -> dict[str, Any]:
    """A step's latencies (scheduled -> answer), throughput, errors, and whether it held."""
    answered = [r for r in records if r.answered is not None]
    errors = [r for r in records if r.error is not None]
    latency = percentiles([1000 * (r.answered - r.scheduled) for r in answered if r.answered])
    last = max((r.answered for r in answered if r.answered), default=started + seconds)
    throughput = len(answered) / max(seconds, last - started)
    error_share = len(errors) / len(records) if records else 0.0
    p99 = latency["p99"]
    held = (
        bool(records)
        and p99 is not None
        and p99 < HELD_P99_MS
        and error_share < HELD_ERROR_SHARE
        and throughput >= HELD_THROUGHPUT_SHARE * rate
    )
    by_kind = {}
    for kind in sorted({r.kind for r in records}):
        of_kind = [
            1000 * (r.answered - r.scheduled) for r in answered if r.kind == kind and r.answered
        ]
        by_kind[kind] = {
            "sent": sum(r.kind == kind for r in records),
            "latency_ms": percentiles(of_kind),
        }
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": len(records),
        "answered": len(answered),
        "ok": sum(r.status == 200 for r in records),
        "statuses": dict(Counter(str(r.status) for r in records)),
        "errors": len(errors),
        "error_samples": [r.error for r in errors][:5],
        "answered_per_s": throughput,
        "latency_ms": latency,
        "service_ms": percentiles(
            [1000 * (r.answered - r.sent) for r in answered if r.answered is not None]
        ),
        "send_lag_ms": percentiles([1000 * (r.sent - r.scheduled) for r in records if r.sent]),
        "by_kind": by_kind,
        "held": held,
    }


def _per_second(records: list[CallRecord], offset: float, rate: float) -> list[dict[str, Any]]:
    """Per second of a step: calls answered and their latency p50/p99 (by scheduled second)."""
    if not records:
        return []
    start = records[0].scheduled
    buckets: dict[int, list[float]] = {}
    for r in records:
        if r.answered is not None:
            buckets.setdefault(int(r.scheduled - start), []).append(
                1000 * (r.answered - r.scheduled)
            )
    return [
        {
            "t": round(offset + second, 1),
            "rate": rate,
            "answered": len(values),
            "p50": percentiles(values)["p50"],
            "p99": percentiles(values)["p99"],
        }
        for second, values in sorted(buckets.items())
    ]


async def one_at_a_time(poster: JsonPoster, mix: WalletMix, calls: int) -> dict[str, Any]:
    """Latency of calls sent one after another: the floor under any load."""
    latencies_ms = []
    for _ in range(calls):
        kind, body = mix.next_call()
        started = time.monotonic()
        answer = await poster.post(PATHS[kind], body)
        latencies_ms.append(1000 * (time.monotonic() - started))
        if answer.status == 200:
            mix.accepted(kind, body)
    return percentiles(latencies_ms)


async def setup(args: argparse.Namespace) -> tuple[str, list[str], str]:
    """The key's merchant, its bench customers and hot customer, funded in the ledger."""
    headers = {"Authorization": f"Bearer {args.api_key}"}
    async with httpx.AsyncClient(base_url=args.api_url, headers=headers, timeout=60) as http:
        merchant = await http.get("/v1/merchant")
        merchant.raise_for_status()
        merchant_id: str = merchant.json()["id"]
        slots = asyncio.Semaphore(16)

        async def customer() -> str:
            body = {
                "external_id": f"bench-wallet-{uuid.uuid4()}",
                "full_name": "Ada Lovelace",
                "birth_date": "1990-12-10",
                "country": "DE",
            }
            async with slots:
                response = await http.post("/v1/customers", json=body)
            response.raise_for_status()
            customer_id: str = response.json()["id"]
            return customer_id

        ids = list(await asyncio.gather(*(customer() for _ in range(args.customers + 1))))
    hot, customers = ids[0], ids[1:]
    amounts = {**dict.fromkeys(customers, FUNDING), hot: HOT_FUNDING}
    async with await AsyncConnection.connect(args.database_url, autocommit=True) as conn:
        await fund_customers(conn, merchant_id, amounts)
    return merchant_id, customers, hot


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    def say(message: str) -> None:
        if not args.no_progress:
            print(message, file=sys.stderr, flush=True)

    setup_started = time.time()
    merchant_id, customers, hot = await setup(args)
    setup_seconds = time.time() - setup_started
    say(f"[wallet-load] {len(customers)} customers + 1 hot, funded in {setup_seconds:.1f} s")
    mix = WalletMix(customers, hot, args.hot_share, seed=args.seed)
    poster = JsonPoster(args.api_url, args.api_key, connections=args.connections)
    ramp = Ramp(poster, mix, args)
    steps = []
    database = await AsyncConnection.connect(args.database_url, autocommit=True)
    try:
        if args.warmup_seconds > 0:
            await ramp.step("wallet-warmup", args.warmup_rate, args.warmup_seconds)
        unloaded = await one_at_a_time(poster, mix, args.unloaded_calls)
        if args.profile_pid:  # bench.profiled_api: profile the steps, not the setup
            os.kill(args.profile_pid, signal.SIGUSR1)
        for rate in args.rates:
            figures = await ramp.step(f"wallet-http-{rate:g}", rate, args.step_seconds)
            # Read as the step ends: an outbox that keeps up has no more to deliver at the end
            # of a faster step than at the end of a slower one.
            figures["outbox_backlog"] = await outbox_backlog_now(database, merchant_id)
            steps.append(figures)
            latency = figures["latency_ms"]
            say(
                f"[wallet-load] {rate:6g}/s: answered {figures['answered_per_s']:7.1f}/s"
                f"  p50 {latency['p50'] or 0:7.1f} ms  p99 {latency['p99'] or 0:7.1f} ms"
                f"  errors {figures['errors']}  outbox backlog {figures['outbox_backlog']}"
                f"  {'held' if figures['held'] else 'not held'}"
            )
            too_slow = latency["p99"] is None or latency["p99"] > args.stop_p99_ms
            if too_slow and rate >= args.report_rate:
                break
    finally:
        if args.profile_pid:
            os.kill(args.profile_pid, signal.SIGUSR2)
        await poster.close()
        await database.close()
    return {
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "api_key")},
        "merchant_id": merchant_id,
        "customers": len(customers),
        "hot_customer": hot,
        "setup_seconds": setup_seconds,
        "connections_opened": poster.opened,
        "unloaded_latency_ms": unloaded,
        "phases": ramp.phases,
        "steps": steps,
        "time_series": ramp.series,
    }


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.wallet_load", description=__doc__)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--api-key", default=DEV_MERCHANT_KEY)
    parser.add_argument("--database-url", required=True, help="to fund the customers")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--hot-share", type=float, default=0.1, help="of the bets")
    parser.add_argument(
        "--rates", type=_rates, default=_rates("100,200,300,400,500,600,800,1000,1200,1500")
    )
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--warmup-rate", type=float, default=100.0)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--unloaded-calls", type=int, default=100, help="sent one at a time")
    parser.add_argument("--stop-p99-ms", type=float, default=50.0)
    parser.add_argument(
        "--report-rate", type=float, default=200.0, help="a rate run even past --stop-p99-ms"
    )
    parser.add_argument("--profile-pid", type=int, help="SIGUSR1 before the steps, SIGUSR2 after")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--drain-timeout", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        results = asyncio.run(run_load(args))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
