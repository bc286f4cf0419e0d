"""Figures of the wallet phase: its targets (PASS/MISS), what limits each, its lines and its chart.

Targets (the game wallet issues): the engine alone at least 1.0 x pgbench's transfers/s; through
HTTP at least 1,000 calls/s held with p99 under 20 ms; p99 under 5 ms and at most 0.7 ms of API
CPU per call at 200/s; an outbox backlog that does not grow from one held step to the next.
"""

from __future__ import annotations

from typing import Any

from bench import profiles

ENGINE_RATIO = 1.0
HTTP_RATE = 1000.0
HTTP_P99_MS = 20.0
REPORT_P99_MS = 5.0
API_CPU_MS = 0.7  # the API process's CPU per call at the report rate (all its processes)
HELD_MEANS = f"p99 < {HTTP_P99_MS:g} ms, errors < 0.1%, answered >= 95%"
BUSY_PERCENT = 85.0  # a process this busy (% of one core) is the limit
MACHINE_BUSY_PERCENT = 170.0  # all processes together, on 2 cores


def http_figures(load: dict[str, Any]) -> dict[str, Any]:
    """The ramp's headline figures: the highest rate held, and latency at the report rate."""
    steps = load["steps"]
    held = [s["rate"] for s in steps if s["held"]]
    report_rate = load["config"]["report_rate"]
    at_report = next((s for s in steps if s["rate"] == report_rate), None)
    return {
        "customers": load["customers"],
        "hot_share": load["config"]["hot_share"],
        "connections_max": load["config"]["connections"],
        "setup_seconds": load["setup_seconds"],
        "rates": [s["rate"] for s in steps],
        "highest_rate_held": max(held, default=0.0),
        "unloaded_latency_ms": load["unloaded_latency_ms"],
        "held_means": f"{HELD_MEANS} of the rate",
        "report_rate": report_rate,
        "at_report_rate": None
        if at_report is None
        else {
            "p50_ms": at_report["latency_ms"]["p50"],
            "p99_ms": at_report["latency_ms"]["p99"],
            "service_p99_ms": at_report["service_ms"]["p99"],
        },
        "stopped_at": steps[-1]["rate"] if steps else None,
        "steps": steps,
        "time_series": load["time_series"],
    }


def targets(wallet: dict[str, Any] | None, row: Any) -> list[dict[str, Any]]:
    """The three rows, made by `row(name, goal, value, limit, ok)` (report's row maker)."""
    wallet = wallet or {}
    rows = []
    engine, pgbench = wallet.get("engine"), wallet.get("pgbench")
    value = engine["calls_per_s"] if engine else None
    limit = ENGINE_RATIO * pgbench["uniform"]["transfers_per_s"] if pgbench else None
    ok = value is not None and limit is not None and value >= limit
    rows.append(row("wallet engine calls/s", f">= {ENGINE_RATIO:g} x pgbench", value, limit, ok))
    rows += http_targets(wallet.get("http"), row)
    return rows


def http_targets(http: dict[str, Any] | None, row: Any) -> list[dict[str, Any]]:
    """The rows of the calls through HTTP: rate held, p99 and API CPU at the report rate, and
    the outbox's backlog along the held steps."""
    held = http["highest_rate_held"] if http else None
    rows = [
        row(
            f"wallet calls/s held through HTTP ({HELD_MEANS})",
            f">= {HTTP_RATE:,.0f}",
            held,
            HTTP_RATE,
            held is not None and held >= HTTP_RATE,
        )
    ]
    rate = http["report_rate"] if http else 200.0
    at = http["at_report_rate"] if http else None
    p99 = at["p99_ms"] if at else None
    rows.append(
        row(
            f"wallet p99 at {rate:g} calls/s through HTTP (ms)",
            f"< {REPORT_P99_MS:g}",
            p99,
            REPORT_P99_MS,
            p99 is not None and p99 < REPORT_P99_MS,
        )
    )
    step = next((s for s in http["steps"] if s["rate"] == rate), None) if http else None
    measured = step is not None and "api" in step.get("cpu_percent_of_one_core", {})
    cpu = step.get("api_cpu_ms_per_call") if step and measured else None  # our own API only
    rows.append(
        row(
            f"API CPU per wallet call (profiled at {rate:g}/s, ms)",
            f"<= {API_CPU_MS:g}",
            cpu,
            API_CPU_MS,
            cpu is not None and cpu <= API_CPU_MS,
        )
    )
    growth, slack = backlog_growth(http)
    rows.append(
        row(
            "outbox backlog at the end of each held HTTP step (growth, events)",
            "does not grow",
            growth,
            slack,
            growth is not None and slack is not None and growth <= slack,
        )
    )
    return rows


def backlog_growth(http: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """How much the outbox's backlog grew from the end of the first held step to its largest at
    the end of a later one, and the slack allowed: one second of the first step's calls (the
    deliveries in flight as a step ends). Every step's when none was held; (None, None) when no
    step read it."""
    steps = [s for s in (http or {}).get("steps", []) if "outbox_backlog" in s]
    steps = [s for s in steps if s["held"]] or steps
    if not steps:
        return None, None
    backlogs = [s["outbox_backlog"] for s in steps]
    return float(max(backlogs) - backlogs[0]), float(steps[0]["rate"])


def annotate(wallet: dict[str, Any], per_phase: dict[str, Any]) -> None:
    """Give each HTTP step its CPU figures, and the wallet what limits each of its figures."""
    for step in wallet.get("http", {}).get("steps", []):
        phase = per_phase.get(f"wallet-http-{step['rate']:g}", {})
        step["cpu_percent_of_one_core"] = phase.get("cpu_percent_of_one_core", {})
        step["machine_cpu_percent"] = phase.get("machine_cpu_percent")
        step["api_cpu_ms_per_call"] = float(_ms_per_call(phase, "api", step["answered"]))
        step["postgres_cpu_ms_per_call"] = float(_ms_per_call(phase, "postgres", step["answered"]))
    wallet["limits"] = limits(wallet, per_phase)


def limits(wallet: dict[str, Any], per_phase: dict[str, Any]) -> dict[str, str]:
    """What limits each wallet figure, in a sentence: who was busy, the CPU each call cost the
    processes on its path, and where it went by the profiles."""
    found = {}
    pgbench, pgbench_phase = wallet.get("pgbench"), per_phase.get("wallet-pgbench-uniform", {})
    if pgbench and pgbench_phase.get("cpu_percent_of_one_core"):
        transfers = pgbench["uniform"]["transfers"]
        found["pgbench"] = (
            f"{_busiest(pgbench_phase, 'PostgreSQL', 'postgres')};"
            f" {_ms_per_call(pgbench_phase, 'postgres', transfers)} ms of PostgreSQL CPU per transfer"
        )
    engine = wallet.get("engine")
    if engine and (phase := per_phase.get("wallet-engine", {})).get("cpu_percent_of_one_core"):
        engine_name = "bench (baselines)"
        sentence = (
            f"{_busiest(phase, 'the engine (bench) process', engine_name)}; per call"
            f" {_ms_per_call(phase, 'postgres', engine['calls'])} ms of PostgreSQL CPU and"
            f" {_ms_per_call(phase, engine_name, engine['calls'])} ms of engine CPU, in batches of"
            f" {engine['batch_size']['mean'] or 0:.0f} calls (mean) taking p50"
            f" {engine['batch_ms']['p50'] or 0:.1f} ms"
        )
        alone = engine.get("one_at_a_time", {})
        one = per_phase.get("wallet-engine-one-at-a-time", {})
        if alone and one.get("cpu_seconds"):
            sentence += (
                f"; a batch of one costs {_ms_per_call(one, 'postgres', alone['calls'])} ms of"
                f" PostgreSQL CPU and {_ms_per_call(one, engine_name, alone['calls'])} ms of engine CPU"
            )
        if profile := engine.get("profile"):
            sentence += f"; the engine's profile: {_profile_text(profile)}"
        found["engine"] = sentence
    drain, drain_phase = wallet.get("outbox_drain"), per_phase.get("wallet-outbox-drain", {})
    if drain and drain["pending_at_start"] and drain_phase.get("cpu_seconds"):
        drained = drain["pending_at_start"] - drain["pending_at_end"]
        postgres = drain_phase["cpu_percent_of_one_core"].get("postgres", 0.0)
        found["outbox"] = (
            f"after the engine phase {drain['pending_at_start']} of its events were still to"
            f" deliver; the worker's webhook dispatcher handled {drained} in"
            f" {drain['seconds']:.1f} s with PostgreSQL at {postgres:.0f}% of one core:"
            f" {_ms_per_call(drain_phase, 'postgres', drained)} ms of PostgreSQL CPU per"
            " delivery (the engine phase's PostgreSQL CPU includes the dispatcher's)"
        )
    http = wallet.get("http")
    if http and http["steps"]:
        last = http["steps"][-1]
        phase = per_phase.get(f"wallet-http-{last['rate']:g}", {})
        if phase.get("cpu_percent_of_one_core"):
            sentence = (
                f"at {last['rate']:g}/s (the ramp's last step, {last['answered_per_s']:.0f}/s"
                f" answered): {_busiest(phase, 'the API process', 'api')}; per call"
                f" {_ms_per_call(phase, 'api', last['answered'])} ms of API CPU and"
                f" {_ms_per_call(phase, 'postgres', last['answered'])} ms of PostgreSQL CPU"
            )
            if profile := wallet.get("api_profile"):
                sentence += f"; the API's profile: {_profile_text(profile)}"
            found["http"] = sentence
        found["latency"] = _latency_limit(wallet, per_phase)
    return found


def _ms_per_call(phase: dict[str, Any], process: str, calls: float) -> str:
    """A process's CPU during a phase, in ms per call of the phase."""
    seconds = phase.get("cpu_seconds", {}).get(process, 0.0)
    return f"{1000 * seconds / max(calls, 1):.2f}"


def _latency_limit(wallet: dict[str, Any], per_phase: dict[str, Any]) -> str:
    http, engine = wallet["http"], wallet.get("engine")
    alone = http["unloaded_latency_ms"]
    sentence = (
        f"one call at a time takes p50 {alone['p50'] or 0:.1f} ms, p99 {alone['p99'] or 0:.1f}"
        " ms through HTTP"
    )
    if engine:
        engine_alone = engine["unloaded_latency_ms"]
        sentence += (
            f" (the engine alone: p50 {engine_alone['p50'] or 0:.1f} ms, a batch of one: two"
            " round trips and a commit)"
        )
    rate = http["report_rate"]
    step = next((s for s in http["steps"] if s["rate"] == rate), None)
    phase = per_phase.get(f"wallet-http-{rate:g}", {})
    if step and (cpu := phase.get("cpu_percent_of_one_core")):
        sentence += (
            f"; at {rate:g}/s the API is {cpu.get('api', 0.0):.0f}% busy"
            f" ({_ms_per_call(phase, 'api', step['answered'])} ms of CPU per call), postgres"
            f" {cpu.get('postgres', 0.0):.0f}%"
        )
    return sentence


def _busiest(phase: dict[str, Any], who: str, name: str) -> str:
    """Which process (or the whole box) was the limit during a phase, with the CPU figures."""
    cpu: dict[str, float] = phase["cpu_percent_of_one_core"]
    ours = sum(cpu.values())
    machine = phase.get("machine_cpu_percent") or ours
    others = max(0.0, machine - ours)
    ranked = ", ".join(f"{n} {v:.0f}%" for n, v in sorted(cpu.items(), key=lambda i: -i[1]))
    own = cpu.get(name, 0.0)
    if own >= BUSY_PERCENT:
        verdict = f"{who} is CPU-bound ({own:.0f}% of one core)"
    elif machine >= MACHINE_BUSY_PERCENT:
        verdict = f"the machine is CPU-bound ({machine:.0f}% of 200%, {others:.0f}% not ours)"
    else:
        verdict = f"no process is CPU-bound ({who} {own:.0f}%): waits (locks, commits, round trips)"
    steal = phase.get("machine_steal_percent")
    extra = f"; other processes on the box {others:.0f}%" if others >= 10 else ""
    extra += f"; hypervisor steal {steal:.0f}%" if steal and steal >= 5 else ""
    return f"{verdict}; CPU % of one core: {ranked}{extra}"


def _profile_text(profile: dict[str, Any]) -> str:
    text = f"{profile['cpu_us_per_call']} µs of CPU per call (profiled), {profiles.area_text(profile, 5)}"
    if profile.get("stages"):
        text += f"; by stage: {profiles.stage_text(profile)}"
    return text


def summary_lines(wallet: dict[str, Any]) -> list[str]:
    lines = []
    if pgbench := wallet.get("pgbench"):
        lines.append(
            "wallet: pgbench transfers ({} clients): uniform {:,.0f}/s (p99 {:.1f} ms),"
            " hot account {:,.0f}/s".format(
                pgbench["uniform"]["clients"],
                pgbench["uniform"]["transfers_per_s"],
                pgbench["uniform"]["latency_ms"]["p99"] or 0,
                pgbench["hot"]["transfers_per_s"],
            )
        )
    if engine := wallet.get("engine"):
        size = engine["batch_size"]
        lines.append(
            f"wallet: engine alone {engine['calls_per_s']:,.0f} calls/s"
            f" ({engine['concurrency']} sessions, {engine['writers']} writers);"
            f" batches p50 {size['p50']} / mean {size['mean'] or 0:.1f} / max {size['max']} calls,"
            f" p50 {engine['batch_ms']['p50'] or 0:.1f} ms; call p99"
            f" {engine['latency_ms']['p99'] or 0:.1f} ms"
        )
        if profile := engine.get("profile"):
            lines += profiles.summary_lines(profile)
    if http := wallet.get("http"):
        at = http["at_report_rate"] or {}
        lines.append(
            f"wallet: HTTP held {http['highest_rate_held']:,.0f} calls/s (p99 < {HTTP_P99_MS:g}"
            f" ms); at {http['report_rate']:g}/s p50 {at.get('p50_ms') or 0:.1f} ms,"
            f" p99 {at.get('p99_ms') or 0:.1f} ms; ramp {', '.join(f'{r:g}' for r in http['rates'])}"
        )
        alone = http["unloaded_latency_ms"]
        lines.append(
            f"  one call at a time: p50 {alone['p50'] or 0:.1f} ms, p99 {alone['p99'] or 0:.1f} ms"
        )
        for step in http["steps"]:
            latency = step["latency_ms"]
            lines.append(
                f"  {step['rate']:6g}/s: answered {step['answered_per_s']:7.1f}/s,"
                f" p50 {latency['p50'] or 0:7.1f} ms, p99 {latency['p99'] or 0:7.1f} ms,"
                f" errors {step['errors']}; CPU per call: API {step.get('api_cpu_ms_per_call', 0):.1f}"
                f" ms, PostgreSQL {step.get('postgres_cpu_ms_per_call', 0):.1f} ms;"
                f" box {step.get('machine_cpu_percent') or 0:.0f}% of 200%;"
                f" outbox backlog at its end {step.get('outbox_backlog', '-')}"
                f"{'' if step['held'] else '  (not held)'}"
            )
        if profile := wallet.get("api_profile"):
            lines.append("wallet: the API under cProfile:")
            lines += profiles.summary_lines(profile)
    for figure, sentence in wallet.get("limits", {}).items():
        lines.append(f"wallet: what limits the {figure} figure: {sentence}")
    return lines


def plot_ramp(axes: Any, wallet: dict[str, Any] | None) -> None:
    """Latency percentiles against the offered rate, with the targets' lines."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    http = (wallet or {}).get("http")
    axes.set_title("game wallet through HTTP: latency by offered rate (open loop)")
    if not http or not http["steps"]:
        return
    rates = [s["rate"] for s in http["steps"]]
    for key, marker in (("p50", "o"), ("p99", "s")):
        values = [s["latency_ms"][key] for s in http["steps"]]
        axes.plot(rates, values, marker=marker, label=f"{key} (scheduled -> answer)")
    axes.axhline(HTTP_P99_MS, color="tab:red", linestyle="--", label=f"{HTTP_P99_MS:g} ms")
    axes.axhline(REPORT_P99_MS, color="tab:orange", linestyle=":", label=f"{REPORT_P99_MS:g} ms")
    axes.axvline(HTTP_RATE, color="tab:gray", linestyle="--", label=f"{HTTP_RATE:,.0f}/s target")
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("offered wallet calls/s")
    axes.set_ylabel("ms")
    answered = axes.twinx()
    answered.plot(
        rates,
        [s["answered_per_s"] for s in http["steps"]],
        color="tab:green",
        linestyle="-.",
        marker="x",
        label="answered/s",
    )
    answered.set_ylim(bottom=0)
    answered.set_ylabel("answered calls/s")
    lines, labels = axes.get_legend_handles_labels()
    more_lines, more_labels = answered.get_legend_handles_labels()
    axes.legend(  # under the axes: never over the data
        lines + more_lines,
        labels + more_labels,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
