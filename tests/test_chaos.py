"""The short chaos run: faults, cancels and rejections under load; nothing lost or doubled.

Besides the crashes, the operator's tools: terminate and reset from Temporal, cancels from the
API again and again while a step runs, `resolve failed` on deposits still polling, disputes of
deposits that ended failed; after the orphan sweep, the money they must never move is zero.
"""

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
            "devtools.chaos",
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
        # Only kills a hung run: the chaos bounds itself (each settle waits at most 300 s), and a
        # withdrawal whose every resend found its provider down may take that whole wait.
        timeout=900,
    )
    out = run.stdout.replace("\r", "\n")
    assert run.returncode == 0, out[-4000:] + run.stderr[-4000:]
    for fault in (
        "SIGKILL worker-1",
        "restart the Temporal dev server",
        "restart PostgreSQL",
        "freeze the PSP",
        "sandbox-cards down",
        "sandbox-bank slow",
        "sandbox-cards and sandbox-bank down",
    ):
        assert fault in out
    for check in (
        "not terminal nor requires_intervention",
        "charged or paid twice",
        "wallet moved other than once",
        "canceled, yet money moved at a provider",
        "rejected, not failed provider_rejected",
        "rejected withdrawal, hold not released",
        "dangling holds",
        "sandbox vs ledger mismatches",
        "audit failures",
        "workflow failed, terminated or timed out",
        "workflow missing",
        "workflow running, payment final",
        "workflow closed, payment not final",
        "workflow canceled, payment not canceled",
        "refund not terminal",
        "refund disagrees with the provider",
        "refunded twice or beyond the deposit",
        "refund moved the wallet other than once",
        "refund workflow disagrees with refund",
        "dispute not final",
        "dispute disagrees with the provider",
        "dispute booked other than once",
        "dispute workflow disagrees with dispute",
        "money moved after an accepted cancel",
        "customer charged, neither credited nor refunded",
        "credit kept on a failed or canceled deposit",
        "dispute took more than the customer got",
    ):
        line = next(line for line in out.splitlines() if line.strip().startswith(check))
        assert line.split()[-1] == "0", line
    cancels = next(line for line in out.splitlines() if line.startswith("operator cancels:"))
    assert "'api " in cancels and "'temporal " in cancels, cancels  # both kinds were sent
    providers = next(line for line in out.splitlines() if line.startswith("providers:"))
    assert "'open'" in providers, providers  # the outages opened breakers
    refunds = next(line for line in out.splitlines() if line.startswith("refunds:"))
    assert "'succeeded'" in refunds, refunds  # the load refunded deposits
    disputes = next(line for line in out.splitlines() if line.startswith("disputes:"))
    assert "'lost'" in disputes or "'won'" in disputes, disputes  # the load disputed deposits
    assert "rejected by the provider: 0" not in cancels, cancels
    tools = next(line for line in out.splitlines() if line.startswith("operator tools:"))
    for tool in ("'terminate: ", "'reset: ", "'resolve failed: ", "'repeated cancel: "):
        assert tool in tools, tools  # the operator used each of them
    assert "orphan sweep: " in out
    assert "chaos: PASS" in out
    root = out.split("(logs in ")[1].split("/logs)")[0]
    left = [
        p.pid for p in psutil.process_iter(["cmdline"]) if root in " ".join(p.info["cmdline"] or [])
    ]
    assert left == []  # every process it started is stopped, PostgreSQL after its restart too
