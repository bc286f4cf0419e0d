"""`paysaga keys`: create, list and revoke API keys in the real database; secrets never stored."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from paysaga.cli import keys

REPO_ROOT = Path(__file__).resolve().parents[2]


def paysaga_cli(postgres_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m paysaga.cli ...` against the test database, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "paysaga.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PAYSAGA_DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def key_row(postgres_url: str, key_id: str) -> dict[str, object]:
    with psycopg.connect(postgres_url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM api_keys WHERE id = %s", (key_id,)).fetchone()
    assert row is not None
    return row


async def test_create_key_stores_only_the_hash_of_its_secret(postgres_url: str) -> None:
    created = await keys.create_key(postgres_url, "checkout backend", ["payments"], "mer_dev")

    assert re.fullmatch(r"sk_live_[A-Za-z0-9_-]{32}", created.secret)
    assert created.key_id.startswith("key_")
    row = key_row(postgres_url, created.key_id)
    assert row["secret_hash"] == hashlib.sha256(created.secret.encode()).hexdigest()
    assert row["prefix"] == created.secret[:12]
    assert row["scopes"] == ["payments"]
    assert row["revoked_at"] is None
    assert all(created.secret not in str(value) for value in row.values())


async def test_create_key_with_unknown_scope_is_refused(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="scopes"):
        await keys.create_key(postgres_url, "typo", ["admin"], "mer_dev")


def test_cli_creates_lists_and_revokes_a_key(postgres_url: str) -> None:
    created = paysaga_cli(
        postgres_url,
        "keys",
        "create",
        "--merchant",
        "mer_dev",
        "--name",
        "ops-desk",
        "--scope",
        "payments",
        "--scope",
        "ops",
    )
    assert created.returncode == 0, created.stderr
    key_id = re.search(r"id:\s+(key_\w+)", created.stdout)
    secret = re.search(r"secret:\s+(sk_live_\S+)", created.stdout)
    assert key_id and secret, created.stdout
    key_id_, secret_ = key_id.group(1), secret.group(1)

    listed = paysaga_cli(postgres_url, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if key_id_ in line)
    assert "ops-desk" in line and secret_[:12] in line and "payments,ops" in line
    assert line.split()[-1] == "-"  # not revoked
    assert secret_ not in listed.stdout

    revoked = paysaga_cli(postgres_url, "keys", "revoke", key_id_)
    assert revoked.returncode == 0, revoked.stderr
    listed = paysaga_cli(postgres_url, "keys", "list")
    line = next(line for line in listed.stdout.splitlines() if key_id_ in line)
    assert line.split()[-1] != "-"
    assert key_row(postgres_url, key_id_)["revoked_at"] is not None


def test_cli_revoke_of_an_unknown_key_fails(postgres_url: str) -> None:
    result = paysaga_cli(postgres_url, "keys", "revoke", "key_nobody")

    assert result.returncode == 1
    assert "no key key_nobody" in result.stderr


async def test_revoked_key_is_not_found_by_its_hash(postgres_url: str) -> None:
    from paysaga.database import open_pool
    from paysaga.store import Store

    created = await keys.create_key(postgres_url, "short-lived", ["payments"], "mer_dev")
    secret_hash = keys.hash_secret(created.secret)
    async with await open_pool(postgres_url, 1, 1) as pool:
        store = Store(pool)
        found = await store.find_api_key_by_hash(secret_hash)
        assert found is not None and found.id == created.key_id
        await keys.revoke_key(postgres_url, created.key_id)
        assert await store.find_api_key_by_hash(secret_hash) is None


async def test_cli_lists_one_merchants_keys(postgres_url: str) -> None:
    merchant = await keys.create_merchant(postgres_url, "Brand K")
    own = await keys.create_key(postgres_url, "till", ["ops"], merchant.id)
    other = await keys.create_key(postgres_url, "elsewhere", ["payments"], "mer_dev")

    listed = paysaga_cli(postgres_url, "keys", "list", "--merchant", merchant.id)

    assert listed.returncode == 0, listed.stderr
    assert own.key_id in listed.stdout and other.key_id not in listed.stdout
