"""`paysaga migrate` on a running installation: a migration that would wait for a table's lock
gives up after PAYSAGA_MIGRATION_LOCK_TIMEOUT_SECONDS (one line, status 1) instead of stalling
every query queued behind it; run again once the lock is gone, it completes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from paysaga.cli.deploy import schema_revision
from paysaga.database import run_migrations

BEFORE, AFTER = "0018_provider_calls", "0019_payment_next_action"  # adds payments.next_action


@pytest.fixture
def database_at_before(postgres_url: str) -> Iterator[str]:
    name = f"locks_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    run_migrations(url, BEFORE)
    yield url
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def migrate_to_after(database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`paysaga migrate --revision AFTER`, as the Job runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYSAGA_")}
    env |= {
        "PAYSAGA_DATABASE_URL": database_url,
        "PAYSAGA_MIGRATION_LOCK_TIMEOUT_SECONDS": "0.3",
    }
    return subprocess.run(
        [sys.executable, "-m", "paysaga.cli", "migrate", "--revision", AFTER],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )


def test_migration_gives_up_on_a_held_lock_then_completes(
    database_at_before: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_at_before) as reader:
        reader.execute("SELECT count(*) FROM payments")  # a running query's lock, held open
        held = migrate_to_after(database_at_before, tmp_path)
        assert schema_revision(database_at_before) == BEFORE

    again = migrate_to_after(database_at_before, tmp_path)

    assert held.returncode == 1
    assert "Traceback" not in held.stderr
    assert len(held.stderr.strip().splitlines()) == 1, held.stderr
    assert "lock timeout" in held.stderr
    assert "PAYSAGA_MIGRATION_LOCK_TIMEOUT_SECONDS" in held.stderr
    assert again.returncode == 0, again.stderr
    assert schema_revision(database_at_before) == AFTER
