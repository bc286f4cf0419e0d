"""Figures of a bench run: percentiles, the targets' PASS/MISS table, the JSON and the PNG."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import outbox, wallet_report

MB = 1024 * 1024


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p95, p99, max and mean of `values` (nearest rank), with their count."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "n": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def _ms(seconds: Sequence[float]) -> dict[str, float | int | None]:
    return percentiles([s * 1000 for s in seconds])


def load_figures(load: dict[str, Any], warmup: float) -> dict[str, Any]:
    """Latencies and rates of the load client's phases."""
    unloaded = [r for r in load["unloaded"] if r["terminal"] is not None]
    saturation = load["saturation"]
    done = [r for r in saturation if r["status"] == "succeeded"]
    first_sent = min((r["sent"] for r in saturation), default=0.0)
    server_last = max((r["server_terminal"] for r in done), default=0.0)
    client_last = max((r["terminal"] for r in done), default=0.0)
    mixed = load["mixed"]
    accepted = [r for r in mixed if r["accept_ms"] is not None]
    finished = [r for r in mixed if r["terminal"] is not None]
    config = load["config"]
    start = min((r["scheduled"] for r in mixed), default=0.0)
    steady_from, steady_to = start + warmup, start + config["duration"]
    in_window = [r for r in finished if steady_from <= r["terminal"] < steady_to]
    by_kind: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in mixed}):
        of_kind = [r for r in mixed if r["kind"] == kind]
        by_kind[kind] = {
            "sent": len(of_kind),
            "succeeded": sum(r["status"] == "succeeded" for r in of_kind),
            "accept_ms": percentiles([r["accept_ms"] for r in of_kind if r["accept_ms"]]),
            "end_to_end_ms": _ms(
                [r["terminal"] - r["scheduled"] for r in of_kind if r["terminal"]]
            ),
        }
    failure_codes: dict[str, int] = {}
    for r in mixed:
        if r["status"] not in (None, "succeeded"):
            code = str(r["failure_code"] or r["status"])
            failure_codes[code] = failure_codes.get(code, 0) + 1
    return {
        "unloaded_deposit": {
            "runs": len(unloaded),
            "end_to_end_ms": _ms([r["terminal"] - r["sent"] for r in unloaded]),
            "server_ms": _ms([r["server_seconds"] for r in unloaded]),
            "accept_ms": percentiles([r["accept_ms"] for r in unloaded]),
        },
        "deposit_saturation": {
            "fired": len(saturation),
            "succeeded": len(done),
            "throughput_per_s": len(done) / (server_last - first_sent) if done else 0.0,
            "throughput_per_s_client_observed": (
                len(done) / (client_last - first_sent) if done else 0.0
            ),
            "seconds": server_last - first_sent if done else None,
            "accept_ms": percentiles([r["accept_ms"] for r in saturation if r["accept_ms"]]),
        },
        "mixed": {
            "rate": config["rate"],
            "duration": config["duration"],
            "sent": len(mixed),
            "accepted": len(accepted),
            "terminal": len(finished),
            "succeeded": sum(r["status"] == "succeeded" for r in mixed),
            "errors": sum(r["error"] is not None for r in mixed),
            "error_samples": [r["error"] for r in mixed if r["error"]][:5],
            "failure_codes": failure_codes,
            "steady_window_s": [warmup, config["duration"]],
            "payments_per_s": len(in_window) / max(steady_to - steady_from, 1e-9),
            "accept_ms": percentiles([r["accept_ms"] for r in accepted]),
            "quote_ms": percentiles([r["quote_ms"] for r in mixed if r["quote_ms"]]),
            "end_to_end_ms": _ms([r["terminal"] - r["scheduled"] for r in finished]),
            "send_lag_ms": _ms([r["sent"] - r["scheduled"] for r in mixed if r["sent"]]),
            "by_kind": by_kind,
        },
        **{
            key: {k: v for k, v in load[key].items() if k != "records"}
            for key in ("deposit_ramp", "deposit_sustain")
            if load.get(key)
        },
    }


def time_series(mixed: list[dict[str, Any]], window: float = 5.0) -> dict[str, Any]:
    """Per-second counts (sent, accepted, terminal) and per-window latency percentiles."""
    if not mixed:
        return {"seconds": [], "sent": [], "accepted": [], "terminal": [], "latency": []}
    start = min(r["scheduled"] for r in mixed)
    end = max([r["terminal"] or r["scheduled"] for r in mixed])
    size = int(end - start) + 1
    sent, accepted, terminal = [0] * size, [0] * size, [0] * size
    for r in mixed:
        sent[int(r["scheduled"] - start)] += 1
        if r["accepted"]:
            accepted[int(r["accepted"] - start)] += 1
        if r["terminal"]:
            terminal[int(r["terminal"] - start)] += 1
    latency = []
    t = 0.0
    while t < size:
        batch = [r for r in mixed if t <= r["scheduled"] - start < t + window and r["terminal"]]
        if batch:
            figures = _ms([r["terminal"] - r["scheduled"] for r in batch])
            accept = percentiles([r["accept_ms"] for r in batch if r["accept_ms"]])
            latency.append({"t": t + window / 2, **figures, "accept_p99": accept["p99"]})
        t += window
    return {
        "seconds": list(range(size)),
        "sent": sent,
        "accepted": accepted,
        "terminal": terminal,
        "latency": latency,
    }


def resource_figures(samples: list[dict[str, Any]], phases: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU seconds per process over the whole run and per phase (and the whole machine's, every
    process on it, in % of one core); peak RSS per process."""

    def nearest(t: float) -> dict[str, Any]:
        sample: dict[str, Any] = min(samples, key=lambda s: abs(s["t"] - t))
        return sample

    def at(t: float) -> dict[str, Any]:
        procs: dict[str, Any] = nearest(t)["procs"]
        return procs

    def machine_percent(t0: float, t1: float, key: str = "machine_cpu") -> float | None:
        """All processes' CPU (ours and anyone else's), % of one core: what the box was doing;
        with `machine_steal`, the time the hypervisor gave our virtual CPUs to someone else."""
        first, last = nearest(t0), nearest(t1)  # over the samples' own interval
        before, after = first.get(key), last.get(key)
        if before is None or after is None or last["t"] <= first["t"]:
            return None
        return round(100 * (float(after) - float(before)) / float(last["t"] - first["t"]), 1)

    def cpu_at(name: str, t: float) -> float:
        """A process's CPU seconds at `t`, interpolated between the samples around it."""
        before = [s for s in samples if s["t"] <= t and name in s["procs"]]
        after = [s for s in samples if s["t"] >= t and name in s["procs"]]
        if not before or not after:
            return float(at(t).get(name, {}).get("cpu", 0.0))
        s0, s1 = before[-1], after[0]
        c0, c1 = float(s0["procs"][name]["cpu"]), float(s1["procs"][name]["cpu"])
        t0, t1 = float(s0["t"]), float(s1["t"])
        if t1 <= t0:
            return c0
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0)

    def cpu_between(t0: float, t1: float) -> dict[str, float]:
        """Per process alive at t1 (one that exited meanwhile took its figures with it)."""
        before = at(t0)
        return {
            n: round(cpu_at(n, t1) - (cpu_at(n, t0) if n in before else 0.0), 3)
            for n in sorted(at(t1))
        }

    if not samples:
        return {"cpu_seconds": {}, "peak_rss_mb": {}}
    samples = sorted(samples, key=lambda s: float(s["t"]))  # marks come from another thread
    peak: dict[str, float] = {}
    for sample in samples:
        for name, proc in sample["procs"].items():
            peak[name] = max(peak.get(name, 0.0), proc["rss"] / MB)
    per_phase = {}
    for phase in phases:
        wall = phase["end"] - phase["start"]
        cpu = cpu_between(phase["start"], phase["end"])
        per_phase[phase["name"]] = {
            "wall_seconds": round(wall, 3),
            "cpu_seconds": cpu,
            "cpu_percent_of_one_core": {n: round(100 * c / wall, 1) for n, c in cpu.items()},
            "machine_cpu_percent": machine_percent(phase["start"], phase["end"]),
            "machine_steal_percent": machine_percent(phase["start"], phase["end"], "machine_steal"),
        }
    return {
        "sample_interval_s": 0.5,
        "cpu_seconds_whole_run": cpu_between(samples[0]["t"], samples[-1]["t"]),
        "per_phase": per_phase,
        "peak_rss_mb": {n: round(v, 1) for n, v in sorted(peak.items())},
    }


DEPOSIT_ROLES: dict[str, tuple[str, ...]] = {
    "temporal": ("temporal",),
    "worker": ("worker", "worker-"),  # every worker process, summed (--watch worker=PID too)
    "api": ("api",),
    "postgres": ("postgres",),
    "sandbox-psp": ("sandbox-psp",),
}
"""A part of the stack -> the names (or prefixes, ending in '-') of its processes."""
BARE_ROLES: dict[str, tuple[str, ...]] = {
    "temporal": ("temporal",),
    "worker": ("bench (baselines)",),
}
"""The bare workflow's worker runs in the bench process, which also starts the workflows."""
WORKER_CPU_MS_LIMIT = 39.0  # half the 78 ms per deposit of the day the issue was filed
ACCEPT_P99_MS_AT_SUSTAIN = 50.0


def cpu_ms_per_payment(
    per_phase: dict[str, Any], phase: str, payments: int, roles: dict[str, tuple[str, ...]]
) -> dict[str, Any] | None:
    """CPU ms per completed payment of each part of the stack during `phase`, and their total."""
    cpu = per_phase.get(phase, {}).get("cpu_seconds")
    if not cpu or payments <= 0:
        return None

    def seconds(names: tuple[str, ...]) -> float:
        return sum(
            float(v)
            for n, v in cpu.items()
            if any(n.startswith(x) if x.endswith("-") else n == x for x in names)
        )

    ms = {role: round(1000 * seconds(names) / payments, 2) for role, names in roles.items()}
    machine = per_phase[phase].get("machine_cpu_percent")
    ours = sum(per_phase[phase].get("cpu_percent_of_one_core", {}).values())
    return {
        "phase": phase,
        "payments": payments,
        "ms": ms,
        "total_ms": round(sum(ms.values()), 2),
        "wall_seconds": per_phase[phase]["wall_seconds"],
        "machine_cpu_percent": machine,
        # Other users' processes on the box meanwhile (% of one core): they share our cores.
        "not_ours_cpu_percent": None if machine is None else round(max(machine - ours, 0.0), 1),
    }


def add_payment_figures(figures: dict[str, Any]) -> None:
    """CPU per payment by process (deposit saturation, bare workflows at once, every ramp step),
    and the saturation rates: the best of the at-once phase and the ramp, deposits and bare."""
    per_phase = figures.get("resources", {}).get("per_phase", {})
    temporal = figures.get("baselines", {}).get("temporal")
    load = figures.get("load")
    cpu: dict[str, Any] = {}
    if load:
        sat = load["deposit_saturation"]
        cpu["deposit_saturation"] = cpu_ms_per_payment(
            per_phase, "saturation", sat["succeeded"], DEPOSIT_ROLES
        )
        for step in load.get("deposit_ramp", {}).get("steps", []):
            step["cpu_ms_per_payment"] = cpu_ms_per_payment(
                per_phase, step["phase"], step["completed"], DEPOSIT_ROLES
            )
        if step := load.get("deposit_sustain", {}).get("step"):
            step["cpu_ms_per_payment"] = cpu_ms_per_payment(
                per_phase, "deposit-sustain", step["completed"], DEPOSIT_ROLES
            )
    if temporal:
        cpu["bare_concurrent"] = cpu_ms_per_payment(
            per_phase, "baseline-temporal-concurrent", temporal["concurrent"], BARE_ROLES
        )
        for step in temporal.get("ramp", {}).get("steps", []):
            step["cpu_ms_per_payment"] = cpu_ms_per_payment(
                per_phase, step["phase"], step["completed"], BARE_ROLES
            )
    figures["cpu_per_payment_ms"] = cpu
    saturation: dict[str, Any] = {}
    if load:
        at_once = load["deposit_saturation"]["throughput_per_s"]
        deposit_ramp = load.get("deposit_ramp", {})
        best = deposit_ramp.get("best_completed_per_s", 0.0)
        saturation["deposit"] = {
            "per_s": max(at_once, best),
            "at_once_per_s": at_once,
            "at_once": load["deposit_saturation"]["fired"],
            "ramp_best_per_s": best,
            "ramp_knee_rate": deposit_ramp.get("knee_rate"),
        }
    if temporal:
        bare_ramp = temporal.get("ramp", {})
        best = bare_ramp.get("best_completed_per_s", 0.0)
        saturation["bare"] = {
            "per_s": max(temporal["throughput_per_s"], best),
            "at_once_per_s": temporal["throughput_per_s"],
            "at_once": temporal["concurrent"],
            "ramp_best_per_s": best,
            "ramp_knee_rate": bare_ramp.get("knee_rate"),
        }
    figures["saturation"] = saturation


def target_row(
    name: str, target: str, value: float | None, limit: float | None, ok: bool
) -> dict[str, Any]:
    """One row of the targets' table: SKIP when there is no figure to judge."""
    result = "SKIP" if value is None or limit is None else ("PASS" if ok else "MISS")
    return {"name": name, "target": target, "value": value, "limit": limit, "result": result}


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the issues "Proof at scale" and "game wallet", with value and PASS/MISS."""
    rows: list[dict[str, Any]] = []

    def add(name: str, target: str, value: float | None, limit: float | None, ok: bool) -> None:
        rows.append(target_row(name, target, value, limit, ok))

    temporal = figures.get("baselines", {}).get("temporal")
    load = figures.get("load")
    saturation = figures.get("saturation", {})
    if "deposit" in saturation and "bare" in saturation:
        value, base = saturation["deposit"]["per_s"], saturation["bare"]["per_s"]
        add("deposits/s at saturation", ">= 1.0 x bare workflow", value, base, value >= base)
    cpu = figures.get("cpu_per_payment_ms", {})
    deposit_cpu, bare_cpu = cpu.get("deposit_saturation"), cpu.get("bare_concurrent")
    if deposit_cpu and bare_cpu:
        value, base = deposit_cpu["ms"]["temporal"], bare_cpu["ms"]["temporal"]
        add("Temporal CPU per deposit (ms)", "<= bare workflow's", value, base, value <= base)
    if deposit_cpu:
        value = deposit_cpu["ms"]["worker"]
        ok = value <= WORKER_CPU_MS_LIMIT
        add("worker CPU per deposit (ms)", "<= 39", value, WORKER_CPU_MS_LIMIT, ok)
    if load and "deposit_sustain" in load:
        sustain = load["deposit_sustain"]
        p99 = sustain.get("step", {}).get("accept_ms", {}).get("p99")
        add(
            f"API accept p99 (ms) at {sustain['fraction']:.0%} of saturation",
            f"< {ACCEPT_P99_MS_AT_SUSTAIN:g}",
            p99,
            ACCEPT_P99_MS_AT_SUSTAIN,
            p99 is not None and p99 < ACCEPT_P99_MS_AT_SUSTAIN,
        )
    if temporal and load:
        base_p50 = temporal["unloaded_latency_ms"]["p50"]
        p50 = load["unloaded_deposit"]["end_to_end_ms"]["p50"]
        ok = p50 is not None and p50 <= 2 * base_p50
        add("unloaded deposit e2e p50 (ms)", "<= 2 x bare workflow", p50, 2 * base_p50, ok)
    database = figures.get("baselines", {}).get("database")
    for shape in ("uniform", "hot"):
        ratio = database[shape]["ratio"] if database else None
        add(
            f"ledger / raw psycopg, {shape}",
            ">= 0.5",
            ratio,
            0.5,
            ratio is not None and ratio >= 0.5,
        )
    if load:
        p99 = load["mixed"]["accept_ms"]["p99"]
        add("API accept p99 (ms), mixed load", "< 100", p99, 100.0, p99 is not None and p99 < 100)
    peaks = figures.get("resources", {}).get("peak_rss_mb", {})
    workers = [v for n, v in peaks.items() if n.startswith("worker")]
    peak = max(workers) if workers else None
    add("worker peak memory (MB)", "< 300", peak, 300.0, peak is not None and peak < 300)
    if "wallet" in figures:
        rows += wallet_report.targets(figures["wallet"], target_row)
    rows += outbox.targets(figures, target_row)  # the outbox's depth, PostgreSQL per wallet call
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _ramp_lines(label: str, ramp: dict[str, Any] | None) -> list[str]:
    """One line per ramp step, then its knee."""
    if not ramp or not ramp.get("steps"):
        return []
    lines = [f"{label} ramp (open loop, {_fmt(ramp['config']['step_seconds'])} s a step):"]
    for step in ramp["steps"]:
        e2e = step["end_to_end_ms"]
        accept = step.get("accept_ms")
        lines.append(
            f"  {step['rate']:>6.1f}/s offered: {step['completed_per_s']:6.2f} completed/s"
            f" ({step['completed']}/{step['sent']}); end-to-end ms p50/p95/p99"
            f" {_fmt(e2e['p50'])}/{_fmt(e2e['p95'])}/{_fmt(e2e['p99'])}"
            + (f"; accept p99 {_fmt(accept['p99'])} ms" if accept else "")
            + _box(step.get("cpu_ms_per_payment"))
            + (f"  <- knee: {step['knee_reason']}" if step.get("knee_reason") else "")
        )
    if ramp.get("knee_rate") is None:
        lines.append("  no knee within the ramp's rates")
    return lines


def _box(cpu: dict[str, Any] | None) -> str:
    """'; box 190% (60% not ours)': the whole machine's CPU during a phase, % of one core."""
    if not cpu or cpu.get("machine_cpu_percent") is None:
        return ""
    return f"; box {cpu['machine_cpu_percent']:.0f}% ({cpu['not_ours_cpu_percent']:.0f}% not ours)"


def _cpu_line(label: str, cpu: dict[str, Any] | None) -> str | None:
    if not cpu:
        return None
    parts = ", ".join(f"{role} {_fmt(ms)}" for role, ms in cpu["ms"].items())
    return (
        f"  {label} ({cpu['payments']} in '{cpu['phase']}'): {parts};"
        f" total {_fmt(cpu['total_ms'])}{_box(cpu)}"
    )


def _history_line(label: str, h: dict[str, Any] | None) -> str | None:
    if not h or not h.get("sampled"):
        return None
    m = h["mean"]
    return (
        f"  {label} (mean of {h['sampled']}): {_fmt(float(m['workflow_tasks']))} workflow tasks"
        f" (+{_fmt(float(m['child_workflow_tasks']))} in"
        f" {_fmt(float(m['child_workflows']))} child workflows),"
        f" {_fmt(float(m['events']))} events, {_fmt(float(m['activity_tasks_scheduled']))}"
        f" activities, {_fmt(float(m['local_activity_markers']))} local-activity markers,"
        f" {_fmt(float(m['search_attribute_upserts']))} search attribute upserts,"
        f" {_fmt(float(m['signals']))} signals, {_fmt(float(m['updates']))} updates,"
        f" {_fmt(float(m['timers']))} timers"
        + (
            f"; failed workflow tasks {_fmt(float(m['workflow_task_failures']))}"
            f" ({', '.join(f'{c} x{n}' for c, n in h['workflow_task_failure_causes'].items())})"
            if h.get("workflow_task_failure_causes")
            else ""
        )
    )


def payment_lines(figures: dict[str, Any]) -> list[str]:
    """Saturation, the ramps, the sustained step, CPU per payment and tasks per saga."""
    lines: list[str] = []
    saturation = figures.get("saturation", {})
    for kind, label in (("deposit", "deposits"), ("bare", "bare workflow")):
        if sat := saturation.get(kind):
            knee = (
                f"knee at {_fmt(sat['ramp_knee_rate'])}/s offered"
                if sat["ramp_knee_rate"] is not None
                else "no knee in the ramp"
            )
            lines.append(
                f"{label} at saturation: {_fmt(sat['per_s'])}/s (the best of"
                f" {sat['at_once']} at once {_fmt(sat['at_once_per_s'])}/s and the ramp's"
                f" {_fmt(sat['ramp_best_per_s'])}/s; {knee})"
            )
    lines += _ramp_lines("deposits", figures.get("load", {}).get("deposit_ramp"))
    lines += _ramp_lines(
        "bare workflow", figures.get("baselines", {}).get("temporal", {}).get("ramp")
    )
    sustain = figures.get("load", {}).get("deposit_sustain", {})
    if step := sustain.get("step"):
        acc, e2e = step["accept_ms"], step["end_to_end_ms"]
        lines.append(
            f"deposits at {sustain['fraction']:.0%} of saturation ({_fmt(step['rate'])}/s for"
            f" {_fmt(step['seconds'])} s): {_fmt(step['completed_per_s'])} completed/s;"
            f" accept ms p50/p99 {_fmt(acc['p50'])}/{_fmt(acc['p99'])};"
            f" end-to-end ms p50/p99 {_fmt(e2e['p50'])}/{_fmt(e2e['p99'])}"
            + _box(step.get("cpu_ms_per_payment"))
        )
    cpu = figures.get("cpu_per_payment_ms", {})
    cpu_lines = [
        _cpu_line("deposits", cpu.get("deposit_saturation")),
        _cpu_line("bare workflow (worker = the bench process)", cpu.get("bare_concurrent")),
    ]
    if any(cpu_lines):
        lines.append("CPU ms per completed payment, by process:")
        lines += [line for line in cpu_lines if line]
    histories = figures.get("workflow_histories", {})
    history_lines = [
        _history_line("deposit", histories.get("deposit")),
        _history_line("bare workflow", histories.get("bare")),
    ]
    if any(history_lines):
        lines.append("per saga, from the histories:")
        lines += [line for line in history_lines if line]
    return lines


def summary_text(figures: dict[str, Any]) -> str:
    """A plain-text summary: key figures, then the targets' table."""
    lines = []
    base = figures.get("baselines", {})
    if temporal := base.get("temporal"):
        lines.append(
            f"bare Temporal workflow ({temporal['activities']} no-op activities):"
            f" {_fmt(temporal['throughput_per_s'])}/s with {temporal['concurrent']} at once;"
            f" unloaded p50 {_fmt(temporal['unloaded_latency_ms']['p50'])} ms"
        )
    if database := base.get("database"):
        for shape in ("uniform", "hot"):
            d = database[shape]
            lines.append(
                f"transfers, {shape:<7}: raw psycopg {_fmt(d['raw']['transfers_per_s'])}/s,"
                f" ledger engine {_fmt(d['ledger']['transfers_per_s'])}/s"
                f" (ratio {_fmt(d['ratio'])}, {database['connections']} connections)"
            )
    if load := figures.get("load"):
        un, sat, mixed = load["unloaded_deposit"], load["deposit_saturation"], load["mixed"]
        lines.append(
            f"deposits: unloaded e2e p50 {_fmt(un['end_to_end_ms']['p50'])} ms"
            f" ({un['runs']} sequential); saturation {_fmt(sat['throughput_per_s'])}/s"
            f" ({sat['succeeded']}/{sat['fired']} succeeded)"
        )
        acc, e2e = mixed["accept_ms"], mixed["end_to_end_ms"]
        lines.append(
            f"mixed load at {_fmt(mixed['rate'])}/s for {_fmt(mixed['duration'])} s:"
            f" {mixed['sent']} sent, {mixed['succeeded']} succeeded, {mixed['errors']} errors,"
            f" {_fmt(mixed['payments_per_s'])} terminal/s (steady)"
        )
        lines.append(
            f"  accept ms p50/p95/p99 {_fmt(acc['p50'])}/{_fmt(acc['p95'])}/{_fmt(acc['p99'])};"
            f" end-to-end ms p50/p95/p99 {_fmt(e2e['p50'])}/{_fmt(e2e['p95'])}/{_fmt(e2e['p99'])}"
        )
        if mixed["failure_codes"]:
            lines.append(f"  not succeeded: {mixed['failure_codes']}")
        if mixed["error_samples"]:
            lines.append(f"  errors, e.g.: {mixed['error_samples'][:2]}")
    lines += payment_lines(figures)
    resources = figures.get("resources", {})
    if phase := resources.get("per_phase", {}).get("mixed"):
        cpu = ", ".join(f"{n} {v}%" for n, v in phase["cpu_percent_of_one_core"].items())
        lines.append(f"CPU during the mixed load (% of one core): {cpu}")
    if peaks := resources.get("peak_rss_mb"):
        lines.append("peak RSS (MB): " + ", ".join(f"{n} {v}" for n, v in peaks.items()))
    if wallet := figures.get("wallet"):
        lines += wallet_report.summary_lines(wallet)
    rows = figures.get("targets", [])
    width = max((len(r["name"]) for r in rows), default=10)
    lines.append("")
    lines.append(f"{'target':<{width}}  {'goal':<24} {'value':>10} {'limit':>10}  result")
    for r in rows:
        lines.append(
            f"{r['name']:<{width}}  {r['target']:<24} {_fmt(r['value']):>10}"
            f" {_fmt(r['limit']):>10}  {r['result']}"
        )
    return "\n".join(lines)


PERCENTILE_COLORS = {"p50": "tab:blue", "p95": "tab:orange", "p99": "tab:red"}
ROLE_COLORS = {
    "temporal": "tab:purple",
    "worker": "tab:blue",
    "api": "tab:green",
    "postgres": "tab:orange",
    "sandbox-psp": "tab:gray",
}


def legend_below(axes: Any, ncol: int = 3, **kwargs: Any) -> None:
    """The axes' legend under it, out of the data (the layout makes room for it)."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        axes.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=ncol,
            fontsize=8,
            frameon=False,
            **kwargs,
        )


def _ramps(figures: dict[str, Any]) -> list[tuple[str, dict[str, Any], str, str]]:
    """(label, ramp, marker, linestyle) of the deposit ramp and the bare workflow's."""
    found = []
    if (deposit := figures.get("load", {}).get("deposit_ramp")) and deposit.get("steps"):
        found.append(("deposits", deposit, "o", "-"))
    bare = figures.get("baselines", {}).get("temporal", {}).get("ramp")
    if bare and bare.get("steps"):
        found.append(("bare workflow", bare, "x", "--"))
    return found


def plot_ramp_latency(axes: Any, figures: dict[str, Any]) -> None:
    """End-to-end p50/p95/p99 against the offered rate, deposits next to the bare workflow."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axes.set_title("latency by offered load (open-loop ramp)")
    plotted = False
    for label, ramp, marker, style in _ramps(figures):
        rates = [s["rate"] for s in ramp["steps"]]
        for key, color in PERCENTILE_COLORS.items():
            values = [s["end_to_end_ms"][key] for s in ramp["steps"]]
            axes.plot(
                rates, values, marker=marker, linestyle=style, color=color, label=f"{label} {key}"
            )
            plotted = True
        if label == "deposits":
            axes.plot(
                rates,
                [s.get("accept_ms", {}).get("p99") for s in ramp["steps"]],
                marker=".",
                linestyle=":",
                color="tab:green",
                label="deposits API accept p99",
            )
    sustain = figures.get("load", {}).get("deposit_sustain", {})
    if step := sustain.get("step"):
        axes.scatter(
            [step["rate"]],
            [step["accept_ms"]["p99"]],
            marker="*",
            s=150,
            color="tab:green",
            zorder=5,
            label=f"accept p99 at {sustain['fraction']:.0%} of saturation",
        )
        axes.axhline(ACCEPT_P99_MS_AT_SUSTAIN, color="tab:green", linewidth=0.8, alpha=0.5)
    if plotted:
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
        axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("offered payments/s")
    axes.set_ylabel("ms (deposits: scheduled -> terminal updated_at)")
    axes.grid(alpha=0.3)
    legend_below(axes, ncol=3)


def plot_ramp_throughput(axes: Any, figures: dict[str, Any]) -> None:
    """Completed/s against offered/s for both, with y = x and the at-once figures."""
    axes.set_title("completed/s by offered load (open-loop ramp)")
    top = 0.0
    colors = {"deposits": "tab:blue", "bare workflow": "tab:purple"}
    for label, ramp, marker, style in _ramps(figures):
        rates = [s["rate"] for s in ramp["steps"]]
        done = [s["completed_per_s"] for s in ramp["steps"]]
        top = max(top, *rates, *done)
        axes.plot(rates, done, marker=marker, linestyle=style, color=colors[label], label=label)
    saturation = figures.get("saturation", {})
    for kind, label in (("deposit", "deposits"), ("bare", "bare workflow")):
        if sat := saturation.get(kind):
            axes.axhline(
                sat["at_once_per_s"],
                color=colors[label],
                linestyle=":",
                linewidth=1,
                label=f"{label}, {sat['at_once']} at once: {sat['at_once_per_s']:.1f}/s",
            )
            top = max(top, sat["at_once_per_s"])
    sustain = figures.get("load", {}).get("deposit_sustain", {})
    if step := sustain.get("step"):
        axes.scatter(
            [step["rate"]],
            [step["completed_per_s"]],
            marker="*",
            s=150,
            color="tab:green",
            zorder=5,
            label=f"deposits at {sustain['fraction']:.0%} of saturation",
        )
    if top > 0:
        axes.plot([0, top * 1.05], [0, top * 1.05], color="gray", linewidth=0.8, label="y = x")
        axes.set_xlim(0, top * 1.05)
        axes.set_ylim(0, top * 1.05)
    axes.set_xlabel("offered payments/s")
    axes.set_ylabel("completed payments/s")
    axes.grid(alpha=0.3)
    legend_below(axes, ncol=2)


def plot_cpu_per_payment(axes: Any, figures: dict[str, Any]) -> None:
    """Stacked bars: CPU ms per completed payment by process, deposit vs bare workflow."""
    axes.set_title("CPU per completed payment, by process (at saturation)")
    cpu = figures.get("cpu_per_payment_ms", {})
    bars = [
        (label, cpu[key])
        for key, label in (
            ("deposit_saturation", "deposit\n(saturation)"),
            ("bare_concurrent", "bare workflow\n(at once; worker =\nthe bench process)"),
        )
        if cpu.get(key)
    ]
    if not bars:
        return
    xs = list(range(len(bars)))
    bottoms = [0.0] * len(bars)
    for role, color in ROLE_COLORS.items():
        values = [float(b["ms"].get(role) or 0.0) for _label, b in bars]
        if not any(values):
            continue
        container = axes.bar(xs, values, 0.5, bottom=bottoms, color=color, label=role)
        axes.bar_label(
            container,
            labels=[f"{v:.0f}" if v >= 3 else "" for v in values],
            label_type="center",
            fontsize=8,
            color="white",
        )
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for x, total in zip(xs, bottoms, strict=True):
        axes.annotate(
            f"{total:.0f} ms", (x, total), ha="center", va="bottom", fontsize=9, weight="bold"
        )
    axes.set_xticks(xs, [label for label, _b in bars])
    axes.set_xlim(-0.75, len(bars) - 0.25)
    axes.set_ylim(0, max(bottoms) * 1.15)
    axes.set_ylabel("CPU ms per payment")
    legend_below(axes, ncol=5)


def plot_targets(axes: Any, figures: dict[str, Any]) -> None:
    """Throughput as a fraction of its baseline, with the target's mark."""
    bars: list[tuple[str, float, float]] = []  # label, ratio, target
    for r in figures.get("targets", []):
        if r["value"] is None or r["limit"] is None:
            continue
        if r["name"].startswith("deposits/s at saturation"):
            bars.append(("deposits / bare wf", r["value"] / max(r["limit"], 1e-9), 1.0))
        elif r["name"].startswith("Temporal CPU per deposit"):
            bars.append(("bare / deposit\nTemporal CPU", r["limit"] / max(r["value"], 1e-9), 1.0))
        elif r["name"].startswith("worker CPU per deposit"):
            bars.append(("39 ms / deposit\nworker CPU", r["limit"] / max(r["value"], 1e-9), 1.0))
        elif r["name"].startswith("ledger / raw"):
            bars.append(
                (r["name"].replace("ledger / raw psycopg, ", "ledger/raw\n"), r["value"], 0.5)
            )
        elif r["name"] == "wallet engine calls/s":
            ratio = wallet_report.ENGINE_RATIO
            bars.append(("wallet engine\n/ pgbench", ratio * r["value"] / r["limit"], ratio))
    if bars:
        xs = range(len(bars))
        axes.bar(xs, [b[1] for b in bars], color="tab:blue")
        axes.scatter(xs, [b[2] for b in bars], color="tab:red", marker="_", s=1500, label="target")
        axes.set_xticks(list(xs), [b[0] for b in bars], fontsize=8)
        legend_below(axes, ncol=1)
    axes.set_title("figure / its baseline or limit (higher is better)")


def plot(figures: dict[str, Any], path: Path) -> None:
    """One PNG: the ramps (latency and completed/s by offered load, deposits next to the bare
    workflow), CPU per payment by process, the targets' ratios, the mixed load over time, the
    game wallet's ramp."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 22), layout="constrained")
    fig.suptitle(f"paysaga bench {figures.get('timestamp', '')}")
    grid = fig.add_gridspec(4, 2)
    plot_ramp_latency(fig.add_subplot(grid[0, 0]), figures)
    plot_ramp_throughput(fig.add_subplot(grid[0, 1]), figures)
    plot_cpu_per_payment(fig.add_subplot(grid[1, 0]), figures)
    plot_targets(fig.add_subplot(grid[1, 1]), figures)
    top, middle = fig.add_subplot(grid[2, 0]), fig.add_subplot(grid[2, 1])
    series = figures.get("time_series", {})
    if series.get("seconds"):
        for key in ("sent", "accepted", "terminal"):
            top.plot(series["seconds"], series[key], label=f"{key}/s")
    top.set_title("mixed load: payments per second")
    top.set_xlabel("seconds since the mixed load began")
    legend_below(top)
    latency = series.get("latency", [])
    if latency:
        t = [w["t"] for w in latency]
        for key in ("p50", "p95", "p99"):
            middle.plot(t, [w[key] for w in latency], marker="o", label=f"end-to-end {key}")
        middle.plot(
            t, [w["accept_p99"] for w in latency], marker="x", linestyle="--", label="accept p99"
        )
    middle.set_title("mixed load: latency (ms), by 5 s window of sending")
    middle.set_xlabel("seconds since the mixed load began")
    middle.set_ylabel("ms")
    legend_below(middle, ncol=4)
    wallet_report.plot_ramp(fig.add_subplot(grid[3, :]), figures.get("wallet"))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_results(figures: dict[str, Any], out_dir: Path, stamp: str) -> tuple[Path, Path]:
    """bench-<stamp>.json and .png in out_dir, copied to latest.json and latest.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / f"bench-{stamp}.json", out_dir / f"bench-{stamp}.png"
    json_path.write_text(json.dumps(figures, indent=2, default=str))
    plot(figures, png_path)
    shutil.copyfile(json_path, out_dir / "latest.json")
    shutil.copyfile(png_path, out_dir / "latest.png")
    return json_path, png_path
