"""Schemathesis over the test stack: every check, a fixed seed, about a minute; nothing may fail.

`make fuzz` runs the same for longer against `make dev`. What is relaxed, and why, is in
schemathesis.toml at the repository root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from paysaga.settings import DEV_PLATFORM_KEY
from tests.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 20261111
SECONDS = int(os.environ.get("PAYSAGA_FUZZ_SECONDS", "60"))


def merchant_of_its_own(stack: Stack) -> str:
    """A `payments` and `ops` key of a merchant created for the fuzzer: what it changes (provider
    accounts and their priorities, webhooks, customers) stays out of the other tests' merchant."""
    platform = {"Authorization": f"Bearer {DEV_PLATFORM_KEY}"}
    with httpx.Client(base_url=stack.api_url, headers=platform, timeout=30) as client:
        merchant = client.post("/v1/merchants", json={"name": "fuzzer"})
        assert merchant.status_code == 201, merchant.text
        key = client.post(
            f"/v1/merchants/{merchant.json()['id']}/api-keys", json={"scopes": ["payments", "ops"]}
        )
        assert key.status_code == 201, key.text
    secret: str = key.json()["secret"]
    return secret


def test_schemathesis_finds_nothing(stack: Stack, tmp_path: Path) -> None:
    key = merchant_of_its_own(stack)
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
        f"Authorization: Bearer {key}",
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
