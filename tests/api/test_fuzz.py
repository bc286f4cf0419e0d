"""Schemathesis over the test stack: every check, a fixed seed, about a minute; nothing may fail.

`make fuzz` runs the same for longer against `make dev`. What is relaxed, and why, is in
schemathesis.toml at the repository root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from paysaga.settings import DEV_OPS_KEY
from tests.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 20261111
SECONDS = int(os.environ.get("PAYSAGA_FUZZ_SECONDS", "60"))


def test_schemathesis_finds_nothing(stack: Stack, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    argv = [
        str(schemathesis),
        "--config-file",
        str(REPO_ROOT / "schemathesis.toml"),
        "run",
        f"{stack.api_url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-time",
        str(SECONDS),
        "--header",
        f"Authorization: Bearer {DEV_OPS_KEY}",
        "--no-color",
    ]
    run = subprocess.run(
        argv,
        cwd=tmp_path,  # its cache folder stays out of the work tree
        capture_output=True,
        text=True,
        timeout=SECONDS + 240,
        check=False,
    )
    report = run.stdout[-20_000:] + run.stderr[-5_000:]

    assert run.returncode == 0, report
    assert " passed" in report and "generated" in report, report
