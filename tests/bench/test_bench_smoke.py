"""`python -m bench --quick`: the whole tool end to end, in seconds (no timing assertions)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_tmp() -> Iterator[str]:
    """A TMPDIR for the bench, short enough for PostgreSQL's socket path under it. Every process
    the bench starts inherits it, which tells them from another bench's (a test run beside us)."""
    path = tempfile.mkdtemp(prefix="pb-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _started_with(tmp: str) -> list[int]:
    """The processes alive with `tmp` as their TMPDIR."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("TMPDIR") == tmp:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_bench_quick_run_reports_every_figure_and_stops_its_stack(
    tmp_path: Path, bench_tmp: str, workers: int
) -> None:
    out_dir = tmp_path / "results"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--quick", "--no-progress"),
            *("--out-dir", str(out_dir), "--workers", str(workers)),
            *("--api-workers", str(workers)),  # the second run: two API processes
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TMPDIR": bench_tmp},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    figures = json.loads((out_dir / "latest.json").read_text())
    assert (out_dir / "latest.png").stat().st_size > 0
    assert len(list(out_dir.glob("bench-*.json"))) == 1
    assert len(list(out_dir.glob("bench-*.png"))) == 1
    baselines = figures["baselines"]
    assert baselines["temporal"]["throughput_per_s"] > 0
    assert baselines["database"]["uniform"]["ratio"] > 0
    assert baselines["database"]["hot"]["ratio"] > 0
    load = figures["load"]
    assert load["unloaded_deposit"]["runs"] == 3
    assert load["deposit_saturation"]["succeeded"] == 10
    assert load["mixed"]["sent"] == load["mixed"]["succeeded"] > 0
    assert {"api", "worker-1", "temporal", "postgres", "sandbox-psp", "load-client"} <= set(
        figures["resources"]["per_phase"]["mixed"]["cpu_seconds"]
    )
    assert "worker-1" in figures["resources"]["peak_rss_mb"]
    results = {row["name"]: row["result"] for row in figures["targets"]}
    assert len(results) == 14
    assert set(results.values()) <= {"PASS", "MISS"}
    assert "worker peak memory (MB)" in run.stdout
    assert "wallet engine calls/s" in run.stdout
    for name in (
        "deposits/s at saturation",
        "Temporal CPU per deposit (ms)",
        "worker CPU per deposit (ms)",
        "API accept p99 (ms) at 80% of saturation",
        "API CPU per wallet call (profiled at 20/s, ms)",
        "outbox backlog at the end of each held HTTP step (growth, events)",
    ):
        assert name in results and name in run.stdout
    assert "deposit throughput (/s)" not in results  # the old 0.8 x bare target, replaced

    worker_names = [f"worker-{n}" for n in range(1, workers + 1)]
    assert set(worker_names) <= set(figures["resources"]["peak_rss_mb"])
    _assert_payment_figures(figures, workers=worker_names)

    wallet = figures["wallet"]
    assert wallet["pgbench"]["uniform"]["transfers_per_s"] > 0
    assert wallet["pgbench"]["hot"]["transfers_per_s"] > 0
    engine = wallet["engine"]
    assert engine["calls"] > 0 and set(engine["outcomes"]) == {"accepted"}
    assert engine["batches"] > 0 and engine["batch_size"]["max"] >= 1
    assert engine["profile"]["by_area"]
    steps = wallet["http"]["steps"]
    assert [step["rate"] for step in steps] == [20.0, 40.0]
    assert all(step["ok"] == step["sent"] > 0 for step in steps)  # every call answered 200
    assert all(step["outbox_backlog"] >= 0 for step in steps)  # read from the database
    assert wallet["api_profile"]["calls"] > 0 and wallet["api_profile"]["by_area"]
    assert {"api", "postgres", "wallet-load-client"} <= set(
        figures["resources"]["per_phase"]["wallet-http-20"]["cpu_seconds"]
    )

    # Every process it started (the stack, its clients, pgbench, the profiled API) is gone.
    assert _started_with(bench_tmp) == []


def _assert_payment_figures(figures: dict, workers: list[str]) -> None:
    """CPU per payment, tasks per saga, the ramps and the sustained step: present and sane."""
    cpu = figures["cpu_per_payment_ms"]
    deposit, bare = cpu["deposit_saturation"], cpu["bare_concurrent"]
    assert deposit["payments"] == 10 and bare["payments"] == 10
    for role in ("temporal", "worker", "api", "postgres"):
        assert deposit["ms"][role] > 0, (role, deposit)
    assert bare["ms"]["temporal"] > 0 and bare["ms"]["worker"] > 0
    per_phase = figures["resources"]["per_phase"]
    assert set(workers) <= set(per_phase["saturation"]["cpu_seconds"])
    worker_seconds = sum(per_phase["saturation"]["cpu_seconds"][w] for w in workers)
    assert deposit["ms"]["worker"] == pytest.approx(1000 * worker_seconds / 10, abs=0.01)
    # The bare workflow's sequential and concurrent parts are phases of their own.
    assert {"baseline-temporal-sequential", "baseline-temporal-concurrent"} <= set(per_phase)

    histories = figures["workflow_histories"]
    for kind in ("deposit", "bare"):
        h = histories[kind]
        assert h["sampled"] == 5 and 0 <= h["closed"] <= 5, (kind, h)
        assert h["mean"]["workflow_tasks"] >= 1
        assert h["mean"]["events"] > h["mean"]["workflow_tasks"]
        for key in (
            "activity_tasks_scheduled",
            "local_activity_markers",
            "search_attribute_upserts",
            "signals",
            "updates",
            "child_workflows",
        ):
            assert h["mean"][key] >= 0
    assert histories["bare"]["closed"] == 5  # a deposit saga may outlive its payment's end
    assert histories["bare"]["mean"]["activity_tasks_scheduled"] == 4
    assert histories["bare"]["mean"]["local_activity_markers"] == 0

    deposit_ramp = figures["load"]["deposit_ramp"]
    bare_ramp = figures["baselines"]["temporal"]["ramp"]
    for ramp in (deposit_ramp, bare_ramp):
        assert [step["rate"] for step in ramp["steps"]] == [2.0, 4.0]
        for step in ramp["steps"]:
            assert step["completed"] == step["sent"] > 0
            assert step["completed_per_s"] > 0 and step["end_to_end_ms"]["p99"] > 0
            assert step["cpu_ms_per_payment"]["ms"]["temporal"] > 0
        assert ramp["best_completed_per_s"] > 0
    assert all(step["accept_ms"]["p99"] > 0 for step in deposit_ramp["steps"])
    saturation = figures["saturation"]
    assert saturation["deposit"]["per_s"] == max(
        saturation["deposit"]["at_once_per_s"], deposit_ramp["best_completed_per_s"]
    )
    assert saturation["bare"]["per_s"] >= saturation["bare"]["at_once_per_s"] > 0
    sustain = figures["load"]["deposit_sustain"]
    assert sustain["step"]["rate"] == pytest.approx(0.8 * saturation["deposit"]["per_s"], abs=0.01)
    assert sustain["step"]["completed"] == sustain["step"]["sent"] > 0
    assert sustain["step"]["accept_ms"]["p99"] > 0
    assert "deposit-sustain" in figures["resources"]["per_phase"]
