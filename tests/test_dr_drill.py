"""The short disaster-recovery drill: the ledger database lost under load, restored, nothing lost.

`make dr-drill` in brief: PostgreSQL killed (SIGKILL) and its data directory deleted while
deposits, withdrawals and wallet bets run; restored from the base backup and the WAL received
synchronously; then RPO 0, a clean audit and reconciliation, every payment ended exactly once.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_ledger_database_lost_under_load_comes_back_whole() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.dr_drill",
            "--duration",
            "16",
            "--rate",
            "4",
            "--customers",
            "3",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = run.stdout.replace("\r", "\n")
    assert run.returncode == 0, out[-4000:] + run.stderr[-4000:]
    assert "DISASTER: " in out and "deleted" in out
    rpo = re.search(r"^RPO: (\d+) committed ledger writes lost", out, re.MULTILINE)
    assert rpo is not None and rpo.group(1) == "0", out[-3000:]
    acknowledged = re.search(
        r"acknowledged before the disaster: (\d+) ledger transactions, (\d+) payments,"
        r" (\d+) wallet calls",
        out,
    )
    assert acknowledged is not None
    assert all(int(n) > 0 for n in acknowledged.groups())  # the RPO counted real writes
    assert re.search(r"^RTO: \d+\.\d s until deposits were accepted again", out, re.MULTILINE)
    # The run's first withdrawal waits 10 s for a review: in flight when the disaster strikes.
    in_flight = re.search(r"^in flight at the disaster: (\d+), ended \{(.*)\}", out, re.MULTILINE)
    assert in_flight is not None and int(in_flight.group(1)) >= 1, out[-3000:]
    for check in (
        "audit failures",
        "sandbox vs ledger mismatches",
        "charged or paid twice",
        "wallet moved other than once",
        "customer charged, neither credited nor refunded",
        "not terminal",
        "requests never accepted",
        "answered 500",
    ):
        line = re.search(rf"^  {re.escape(check)} +(\d+)", out, re.MULTILINE)
        assert line is not None, check
        assert line.group(1) == "0", line.group(0)
    assert "dr-drill: PASS" in out
