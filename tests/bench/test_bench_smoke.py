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


def test_bench_quick_run_reports_every_figure_and_stops_its_stack(
    tmp_path: Path, bench_tmp: str
) -> None:
    out_dir = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-progress", "--out-dir", str(out_dir)],
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
    assert len(results) == 9
    assert set(results.values()) <= {"PASS", "MISS"}
    assert "worker peak memory (MB)" in run.stdout
    assert "wallet engine calls/s" in run.stdout

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
    assert wallet["api_profile"]["calls"] > 0 and wallet["api_profile"]["by_area"]
    assert {"api", "postgres", "wallet-load-client"} <= set(
        figures["resources"]["per_phase"]["wallet-http-20"]["cpu_seconds"]
    )

    # Every process it started (the stack, its clients, pgbench, the profiled API) is gone.
    assert _started_with(bench_tmp) == []
