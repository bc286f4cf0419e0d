"""`make dev` with backups on: the stack streams its WAL, and comes back whole after its
PostgreSQL data and Temporal store are deleted (`paysaga restore`, README "Backups")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from paysaga.settings import DEV_MERCHANT_KEY
from tests.paysaga.test_devstack import DevStack

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADERS = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}


def paysaga(stack: DevStack, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "PAYSAGA_ENVIRONMENT": "development"}
    env.pop("PAYSAGA_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "paysaga.cli", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def new_customer(stack: DevStack, external_id: str) -> str:
    created = httpx.post(
        f"{stack.api}/v1/customers",
        headers=HEADERS,
        json={
            "external_id": external_id,
            "full_name": "Ada",
            "birth_date": "1990-01-01",
            "country": "DE",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    customer_id: str = created.json()["id"]
    return customer_id


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(tmp_path / "data")
    stack.env.pop("PAYSAGA_DATABASE_URL", None)
    yield stack
    if stack.process is not None and stack.process.poll() is None:
        stack.interrupt()


def test_the_dev_stack_restored_from_its_backups_has_every_write(dev_stack: DevStack) -> None:
    enabled = paysaga(dev_stack, "backup", "enable")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    dev_stack.start()
    assert "[Backup] receiving the WAL" in "".join(dev_stack.output)
    before = new_customer(dev_stack, "before-the-base-backup")
    base = paysaga(dev_stack, "backup", "base")
    assert base.returncode == 0, base.stdout + base.stderr
    assert "Temporal store:" in base.stdout
    after = new_customer(dev_stack, "after-the-base-backup")  # in the streamed WAL only
    running = dev_stack.processes()
    assert dev_stack.interrupt() == 0
    psutil.wait_procs(running, timeout=10)
    left = [p for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [p.cmdline() for p in left]

    data = dev_stack.data_dir
    shutil.rmtree(data / "postgres")
    for leftover in data.glob("temporal.db*"):
        os.remove(leftover)
    restored = paysaga(dev_stack, "restore", "--start", "--temporal-db", str(data / "temporal.db"))
    assert restored.returncode == 0, restored.stdout + restored.stderr

    dev_stack.start()
    for customer_id, external_id in (
        (before, "before-the-base-backup"),
        (after, "after-the-base-backup"),
    ):
        again = httpx.get(f"{dev_stack.api}/v1/customers/{customer_id}", headers=HEADERS)
        assert again.status_code == 200, again.text
        assert again.json()["external_id"] == external_id
    new_customer(dev_stack, "after-the-restore")  # commits are acknowledged again
    running = dev_stack.processes()
    assert dev_stack.interrupt() == 0
    psutil.wait_procs(running, timeout=10)  # the restored PostgreSQL stopped with the stack
    assert [p.pid for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
