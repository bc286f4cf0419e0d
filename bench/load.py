"""`python -m bench.load`: the load client, a process of its own that drives paysaga's HTTP API.

Phases: setup (customers, each funded by a deposit), unloaded (sequential deposits), saturation
(deposits fired at once), the deposit ramp (open loop at rising rates up to the knee, see
`bench.ramp`), the sustained step (deposits at a fraction of the saturation rate, for the API's
accept latency there) and mixed (deposits, withdrawals and transfers, open loop at a fixed rate).
It writes every payment's timings as JSON; `bench.report` makes figures of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import ramp
from paysaga.settings import DEV_MERCHANT_KEY

TERMINAL = {"succeeded", "failed", "canceled"}
FUNDING = 1_000_000  # 10,000.00 EUR per customer: enough for every withdrawal and transfer
MIX = {"deposit": 0.5, "withdrawal": 0.25, "transfer": 0.25}


@dataclass
class Record:
    """One payment as the client saw it; times are wall-clock seconds (time.time())."""

    kind: str
    scheduled: float
    sent: float = 0.0
    accepted: float | None = None  # the 202 of the payment's POST
    accept_ms: float | None = None
    quote_ms: float | None = None  # transfers: the quote's POST
    http_status: int | None = None
    error: str | None = None
    payment_id: str | None = None
    terminal: float | None = None  # first poll that saw a terminal status
    status: str | None = None
    failure_code: str | None = None
    server_seconds: float | None = None  # updated_at - created_at, as the API reports them
    server_terminal: float | None = None  # updated_at as a timestamp


@dataclass
class Progress:
    """Counters of the current phase, shown on one line of stderr."""

    phase: str = ""
    started: float = 0.0
    cpu_started: float = 0.0
    sent: int = 0
    accepted: int = 0
    terminal: int = 0
    failed: int = 0
    errors: int = 0
    show: bool = True
    phases: list[dict[str, Any]] = field(default_factory=list)

    def begin(self, phase: str) -> None:
        self.end()
        self.phase, self.started, self.cpu_started = phase, time.time(), _cpu()
        self.sent = self.accepted = self.terminal = self.failed = self.errors = 0

    def end(self) -> None:
        if self.phase:
            self.render()
            if self.show:
                print(file=sys.stderr, flush=True)
            self.phases.append(
                {
                    "name": self.phase,
                    "start": self.started,
                    "end": time.time(),
                    "cpu_start": self.cpu_started,
                    "cpu_end": _cpu(),
                }
            )
            self.phase = ""

    def render(self) -> None:
        if self.show and self.phase:
            print(
                f"\r[load] {self.phase:<10} {time.time() - self.started:6.1f}s"
                f"  sent {self.sent:5d}  accepted {self.accepted:5d}"
                f"  terminal {self.terminal:5d}  failed {self.failed:3d}  errors {self.errors:3d}",
                end="",
                file=sys.stderr,
                flush=True,
            )


def _cpu() -> float:
    """CPU seconds of this process so far (user + system)."""
    times = os.times()
    return times.user + times.system


class LoadClient:
    """Payments through the API, each followed to its terminal status by a bounded poller."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        pollers: int,
        poll_interval: float,
        progress: Progress,
        poll_budget: float = 20.0,
    ) -> None:
        self.http = http
        self.polls = asyncio.Semaphore(pollers)
        self.poll_interval = poll_interval
        self.poll_budget = poll_budget
        self.progress = progress
        self.customers: list[str] = []
        self.following = 0  # payments followed with the budget, at this moment

    async def _pause(self, interval: float, budgeted: bool) -> None:
        """Sleep between two polls of one payment. Budgeted, the polls of all the payments being
        followed stay under `poll_budget` GETs/s (the interval grows with their number, and
        shrinks again as they end): the saturation and the ramp measure the payments' CPU, not
        their polling's. Their completion time is the server's updated_at, not the poll's."""
        if not budgeted or self.poll_budget <= 0:
            await asyncio.sleep(interval)
            return
        waited, chunk = 0.0, max(interval, 0.5)
        while waited < max(interval, self.following / self.poll_budget):
            await asyncio.sleep(chunk)
            waited += chunk

    async def create_customer(self) -> str:
        body = {
            "external_id": f"bench-{uuid.uuid4()}",
            "full_name": "Ada Lovelace",
            "birth_date": "1990-12-10",
            "country": "DE",
        }
        response = await self.http.post("/v1/customers", json=body)
        response.raise_for_status()
        customer_id: str = response.json()["id"]
        return customer_id

    async def post(
        self,
        record: Record,
        path: str,
        body: dict[str, Any],
        *,
        interval: float | None = None,
        budgeted: bool = False,
    ) -> None:
        """POST a payment; on 202 follow it to its terminal status."""
        record.sent = time.time()
        self.progress.sent += 1
        try:
            response = await self.http.post(
                path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
            )
        except httpx.HTTPError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            self.progress.errors += 1
            return
        record.http_status = response.status_code
        if response.status_code != 202:
            record.error = response.text[:300]
            self.progress.errors += 1
            return
        record.accepted = time.time()
        record.accept_ms = (record.accepted - record.sent) * 1000
        record.payment_id = response.json()["id"]
        self.progress.accepted += 1
        await self.follow(record, interval, budgeted)

    async def follow(
        self, record: Record, interval: float | None = None, budgeted: bool = False
    ) -> None:
        """Poll GET /v1/payments/{id} until its status is terminal (at most `pollers` at once)."""
        interval = self.poll_interval if interval is None else interval
        if budgeted:
            self.following += 1
        try:
            await self._follow(record, interval, budgeted)
        finally:
            if budgeted:
                self.following -= 1

    async def _follow(self, record: Record, interval: float, budgeted: bool) -> None:
        while True:
            async with self.polls:
                try:
                    response = await self.http.get(f"/v1/payments/{record.payment_id}")
                except httpx.HTTPError:
                    response = None
                seen = time.time()
            if response is not None and response.status_code == 200:
                payment = response.json()
                if payment["status"] in TERMINAL:
                    record.terminal = seen
                    record.status = payment["status"]
                    record.failure_code = payment.get("failure_code")
                    created = datetime.fromisoformat(payment["created_at"]).timestamp()
                    updated = datetime.fromisoformat(payment["updated_at"]).timestamp()
                    record.server_seconds = updated - created
                    record.server_terminal = updated
                    self.progress.terminal += 1
                    if record.status != "succeeded":
                        self.progress.failed += 1
                    return
            await self._pause(interval, budgeted)

    async def deposit(
        self,
        record: Record,
        customer: str,
        amount: int,
        *,
        interval: float | None = None,
        budgeted: bool = False,
    ) -> None:
        body = {
            "customer_id": customer,
            "amount": amount,
            "currency": "EUR",
            "payment_method": "pm_ok",
        }
        await self.post(record, "/v1/deposits", body, interval=interval, budgeted=budgeted)

    async def withdrawal(self, record: Record, customer: str, amount: int) -> None:
        body = {
            "customer_id": customer,
            "amount": amount,
            "currency": "EUR",
            "destination": "pm_ok",
        }
        await self.post(record, "/v1/withdrawals", body)

    async def transfer(self, record: Record, customer: str, beneficiary: str, amount: int) -> None:
        quote_body = {
            "customer_id": customer,
            "source_currency": "EUR",
            "target_currency": "USD",
            "source_amount": amount,
        }
        started = time.time()
        try:
            response = await self.http.post("/v1/fx/quotes", json=quote_body)
        except httpx.HTTPError as exc:
            record.sent, record.error = started, f"quote: {type(exc).__name__}: {exc}"
            self.progress.sent += 1
            self.progress.errors += 1
            return
        record.quote_ms = (time.time() - started) * 1000
        if response.status_code != 201:
            record.sent, record.http_status = started, response.status_code
            record.error = f"quote: {response.text[:300]}"
            self.progress.sent += 1
            self.progress.errors += 1
            return
        body = {
            "customer_id": customer,
            "quote_id": response.json()["id"],
            "beneficiary": {"customer_id": beneficiary},
        }
        await self.post(record, "/v1/transfers", body)


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress(show=not args.no_progress)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    rng = random.Random(args.seed)
    async with httpx.AsyncClient(
        base_url=args.api_url, headers=headers, timeout=60, limits=limits
    ) as http:
        client = LoadClient(
            http,
            pollers=args.pollers,
            poll_interval=args.poll_interval,
            progress=progress,
            poll_budget=args.poll_budget,
        )
        reporter = asyncio.create_task(_render_every(progress, 0.5))
        try:
            progress.begin("setup")
            client.customers = list(
                await asyncio.gather(*(client.create_customer() for _ in range(args.customers)))
            )
            funding = [Record("deposit", time.time()) for _ in client.customers]
            await asyncio.gather(
                *(
                    client.deposit(r, c, FUNDING)
                    for r, c in zip(funding, client.customers, strict=True)
                )
            )
            if any(r.status != "succeeded" for r in funding):
                bad = [asdict(r) for r in funding if r.status != "succeeded"][:3]
                raise SystemExit(f"bench.load: funding deposits did not all succeed: {bad}")

            progress.begin("unloaded")
            unloaded = []
            for n in range(args.unloaded):
                record = Record("deposit", time.time())
                await client.deposit(record, client.customers[n % len(client.customers)], 1000)
                unloaded.append(record)

            progress.begin("saturation")
            saturation = [Record("deposit", time.time()) for _ in range(args.saturation)]
            # Followed slowly (completion is the server's updated_at): the polls must not steal
            # the CPU whose throughput is being measured.
            await asyncio.gather(
                *(
                    _deposit_followed_slowly(client, r, client.customers[n % len(client.customers)])
                    for n, r in enumerate(saturation)
                )
            )

            config = ramp.config_from(args)
            ramp_steps, ramp_records = await _deposit_ramp(client, rng, config)
            deposit_ramp = ramp.summarize(ramp_steps, config)
            at_once = saturation_per_s([asdict(r) for r in saturation])
            saturation_rate = max(at_once, deposit_ramp["best_completed_per_s"])
            sustain_rate = round(args.sustain_fraction * saturation_rate, 2)
            sustain: dict[str, Any] = {
                "fraction": args.sustain_fraction,
                "saturation_per_s": saturation_rate,
            }
            if sustain_rate > 0 and args.sustain_seconds > 0:
                progress.begin("deposit-sustain")
                sustain_records = await _deposit_step(
                    client, rng, sustain_rate, args.sustain_seconds, config.drain_timeout
                )
                sustain["step"] = _deposit_step_figures(
                    sustain_rate, args.sustain_seconds, sustain_records
                )
                sustain["records"] = [asdict(r) for r in sustain_records]

            progress.begin("mixed")
            mixed = await _open_loop(client, rng, args.rate, args.duration, args.drain_timeout)
            progress.end()
        finally:
            reporter.cancel()
    return {
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "api_key")},
        "phases": progress.phases,
        "funding": [asdict(r) for r in funding],
        "unloaded": [asdict(r) for r in unloaded],
        "saturation": [asdict(r) for r in saturation],
        "deposit_ramp": {
            **deposit_ramp,
            "records": {step: [asdict(r) for r in rs] for step, rs in ramp_records.items()},
        },
        "deposit_sustain": sustain,
        "mixed": [asdict(r) for r in mixed],
    }


def saturation_per_s(saturation: list[dict[str, Any]]) -> float:
    """Deposits fired at once: succeeded / (the last one's updated_at - the first POST)."""
    done = [r for r in saturation if r["status"] == "succeeded"]
    if not done:
        return 0.0
    first_sent = min(r["sent"] for r in saturation)
    last = max(float(r["server_terminal"]) for r in done)
    return len(done) / max(last - float(first_sent), 1e-9)


async def _deposit_ramp(
    client: LoadClient, rng: random.Random, config: ramp.RampConfig
) -> tuple[list[dict[str, Any]], dict[str, list[Record]]]:
    """Open-loop steps of deposits at rising rates, each drained before the next, to the knee."""
    steps: list[dict[str, Any]] = []
    records: dict[str, list[Record]] = {}
    for rate in config.rates():
        name = f"deposit-ramp-{rate:g}"
        client.progress.begin(name)
        step_records = await _deposit_step(
            client, rng, rate, config.step_seconds, config.drain_timeout
        )
        step = _deposit_step_figures(rate, config.step_seconds, step_records)
        step["phase"] = name
        step["knee_reason"] = ramp.knee_reason(step, config)
        steps.append(step)
        records[name] = step_records
        if step["knee_reason"]:
            break
    return steps, records


async def _deposit_step(
    client: LoadClient, rng: random.Random, rate: float, seconds: float, drain_timeout: float
) -> list[Record]:
    """Deposits at `rate`/s for `seconds`, sent on schedule, each followed (on the poll budget)
    to its end; waits for them at most `drain_timeout` after the last is sent."""
    records: list[Record] = []
    tasks: list[asyncio.Task[None]] = []
    start = time.time()
    for n in range(max(1, int(rate * seconds))):
        due = start + n / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        record = Record("deposit", due)
        records.append(record)
        coro = client.deposit(
            record, rng.choice(client.customers), 1000, interval=0.5, budgeted=True
        )
        tasks.append(asyncio.create_task(coro))
    _done, pending = await asyncio.wait(tasks, timeout=drain_timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    return records


def _deposit_step_figures(rate: float, seconds: float, records: list[Record]) -> dict[str, Any]:
    """A step's figures; a deposit completes at its terminal updated_at (the server's clock, on
    this host), so that the polling's period does not count in its latency."""
    done = [r for r in records if r.status == "succeeded" and r.server_terminal is not None]
    return ramp.step_figures(
        rate,
        seconds,
        sent=len(records),
        scheduled=[r.scheduled for r in records],
        completed=[(r.scheduled, r.server_terminal) for r in done if r.server_terminal],
        accept_ms=[r.accept_ms for r in records if r.accept_ms is not None],
        send_lag_s=[r.sent - r.scheduled for r in records if r.sent],
        errors=sum(r.error is not None for r in records),
        error_samples=[r.error for r in records if r.error],
    )


async def _deposit_followed_slowly(client: LoadClient, record: Record, customer: str) -> None:
    record.sent = time.time()
    client.progress.sent += 1
    body = {"customer_id": customer, "amount": 1000, "currency": "EUR", "payment_method": "pm_ok"}
    try:
        response = await client.http.post(
            "/v1/deposits", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        client.progress.errors += 1
        return
    record.http_status = response.status_code
    if response.status_code != 202:
        record.error = response.text[:300]
        client.progress.errors += 1
        return
    record.accepted = time.time()
    record.accept_ms = (record.accepted - record.sent) * 1000
    record.payment_id = response.json()["id"]
    client.progress.accepted += 1
    await client.follow(record, interval=0.5, budgeted=True)


async def _open_loop(
    client: LoadClient, rng: random.Random, rate: float, duration: float, drain_timeout: float
) -> list[Record]:
    """Send at `rate`/s for `duration` s whatever the answers take; then wait for the stragglers."""
    records: list[Record] = []
    tasks: list[asyncio.Task[None]] = []
    kinds, weights = list(MIX), list(MIX.values())
    customers = client.customers
    start = time.time()
    for n in range(int(rate * duration)):
        due = start + n / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        kind = rng.choices(kinds, weights)[0]
        customer = rng.choice(customers)
        record = Record(kind, due)
        records.append(record)
        amount = rng.randint(100, 1000)
        if kind == "deposit":
            coro = client.deposit(record, customer, amount)
        elif kind == "withdrawal":
            coro = client.withdrawal(record, customer, amount)
        else:
            other = rng.choice([c for c in customers if c != customer] or [customer])
            coro = client.transfer(record, customer, other, amount)
        tasks.append(asyncio.create_task(coro))
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=drain_timeout)
        for task in pending:
            task.cancel()
    return records


async def _render_every(progress: Progress, seconds: float) -> None:
    while True:
        progress.render()
        await asyncio.sleep(seconds)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--api-key", default=DEV_MERCHANT_KEY)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--rate", type=float, default=4.0, help="payments/s of the mixed load")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of mixed load")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--unloaded", type=int, default=20, help="sequential deposits")
    parser.add_argument("--saturation", type=int, default=200, help="deposits fired at once")
    parser.add_argument("--pollers", type=int, default=8, help="GETs in flight at most")
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument(
        "--poll-budget",
        type=float,
        default=20.0,
        help="GETs/s at most, all together, to follow the saturation's and the ramp's deposits",
    )
    parser.add_argument(
        "--sustain-fraction",
        type=float,
        default=0.8,
        help="the sustained step's rate, x the deposit saturation rate",
    )
    parser.add_argument("--sustain-seconds", type=float, default=15.0)
    ramp.add_arguments(parser)
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
