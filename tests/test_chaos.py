"""The short chaos run: crashes and restarts under load, then nothing lost, doubled or dangling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_chaos_under_load_loses_and_duplicates_nothing() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "paysaga.chaos",
            "--duration",
            "15",
            "--rate",
            "3",
            "--customers",
            "4",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = run.stdout.replace("\r", "\n")
    assert run.returncode == 0, out[-4000:] + run.stderr[-4000:]
    for fault in (
        "SIGKILL worker-1",
        "restart the Temporal dev server",
        "restart PostgreSQL",
        "freeze the PSP",
    ):
        assert fault in out
    for check in (
        "lost (not terminal)",
        "charged or paid twice",
        "wallet moved other than once",
        "dangling holds",
        "sandbox vs ledger mismatches",
        "audit failures",
    ):
        line = next(line for line in out.splitlines() if line.strip().startswith(check))
        assert line.split()[-1] == "0", line
    assert "chaos: PASS" in out
    root = out.split("(logs in ")[1].split("/logs)")[0]
    left = [
        p.pid for p in psutil.process_iter(["cmdline"]) if root in " ".join(p.info["cmdline"] or [])
    ]
    assert left == []  # every process it started is stopped, PostgreSQL after its restart too
