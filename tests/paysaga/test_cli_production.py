"""The `paysaga` command in production: no embedded database, and every failure one clear line.

Each test runs the command as an operator does, as a process, from a folder of its own (no .env).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from devtools.stack import free_port


def paysaga(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAYSAGA_", "TEMPORAL_"))}
    return subprocess.run(
        [sys.executable, "-m", "paysaga.cli", *args],
        cwd=tmp_path,
        env={**clean, "PAYSAGA_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def test_merchants_create_in_production_starts_no_embedded_database(tmp_path: Path) -> None:
    result = paysaga(tmp_path, "merchants", "create", "--name", "Acme")

    line = assert_one_line_failure(result, "paysaga merchants create", "PAYSAGA_DATABASE_URL")
    assert "embedded" in line
    assert not (tmp_path / "data" / "postgres").exists()


@pytest.mark.parametrize(
    "command",
    [["ledger", "audit"], ["keys", "list"], ["merchants", "create", "--name", "Acme"], ["migrate"]],
    ids=["ledger-audit", "keys-list", "merchants-create", "migrate"],
)
def test_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    nobody = f"postgresql://paysaga:secret-password@127.0.0.1:{free_port()}/paysaga"

    result = paysaga(tmp_path, *command, PAYSAGA_DATABASE_URL=nobody)

    line = assert_one_line_failure(result, "cannot reach the ledger database", "PostgreSQL")
    assert "secret-password" not in line


def test_unreachable_temporal_is_one_line(tmp_path: Path) -> None:
    result = paysaga(tmp_path, "search-attributes", TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")

    assert_one_line_failure(result, "paysaga search-attributes", "cannot reach Temporal")


def test_unknown_temporal_profile_is_one_line(tmp_path: Path) -> None:
    result = paysaga(
        tmp_path,
        "search-attributes",
        TEMPORAL_CONFIG_FILE=str(tmp_path / "none.toml"),
        TEMPORAL_PROFILE="staging",
    )

    assert_one_line_failure(result, "Profile 'staging' not found", "TEMPORAL_")


def test_invalid_setting_is_one_line(tmp_path: Path) -> None:
    result = paysaga(tmp_path, "ledger", "audit", PAYSAGA_API_KEYS="not json")

    assert_one_line_failure(result, "invalid setting PAYSAGA_API_KEYS")


def test_unreadable_secret_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret"
    result = paysaga(tmp_path, "ledger", "audit", PAYSAGA_DATABASE_URL_FILE=str(missing))

    assert_one_line_failure(result, "PAYSAGA_DATABASE_URL_FILE", str(missing))


def test_version_is_the_installed_one(tmp_path: Path) -> None:
    result = paysaga(tmp_path, "--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"paysaga {version('paysaga')}"
