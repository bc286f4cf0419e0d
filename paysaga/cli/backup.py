"""`paysaga backup ...` and `paysaga restore`: the ledger database's backups (`paysaga.backup`)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from paysaga import backup
from paysaga.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `backup` and `restore` subcommands."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--backup-dir",
        type=Path,
        help="the backup directory (default: PAYSAGA_BACKUP_DIR, or <data dir>/backup)",
    )
    parser = commands.add_parser("backup", help="WAL archiving and base backups of the ledger")
    backup_commands = parser.add_subparsers(dest="backup_command", required=True)
    enable = backup_commands.add_parser(
        "enable",
        parents=[where],
        help="turn on WAL archiving into the backup directory, and synchronous streaming: a"
        " commit then waits until `paysaga backup stream` has its WAL (restart PostgreSQL"
        " when told)",
    )
    enable.add_argument(
        "--asynchronous",
        action="store_true",
        help="archive complete segments only (commits never wait; the last minute may be lost)",
    )
    base = backup_commands.add_parser(
        "base", parents=[where], help="a base backup (pg_basebackup), and Temporal's dev store"
    )
    base.add_argument(
        "--temporal-db",
        type=Path,
        help="the Temporal dev server's SQLite file (default: <data dir>/temporal.db, if any)",
    )
    backup_commands.add_parser(
        "stream",
        parents=[where],
        help="receive the WAL as it is written (pg_receivewal --synchronous), until stopped",
    )
    restore = commands.add_parser(
        "restore",
        parents=[where],
        help="the latest base backup into a data directory, recovering to the last WAL record",
    )
    restore.add_argument(
        "--pgdata", type=Path, help="the data directory (default: <data dir>/postgres)"
    )
    restore.add_argument(
        "--force", action="store_true", help="delete the data directory if it is not empty"
    )
    restore.add_argument(
        "--start",
        action="store_true",
        help="start PostgreSQL on it (its unix socket in the data directory) and wait until"
        " it has replayed the WAL and opened",
    )
    restore.add_argument(
        "--temporal-db",
        type=Path,
        help="also put back the latest copy of Temporal's dev store at this file",
    )


def run(args: argparse.Namespace, settings: Settings, database_url: str | None) -> int:
    """Run `backup ...` or `restore`; one line on failure, and a non-zero status."""
    layout = backup.BackupLayout(_backup_dir(args, settings))
    try:
        if args.command == "restore":
            return _restore(args, settings, layout)
        assert database_url is not None
        if args.backup_command == "enable":
            restart = backup.enable_archiving(database_url, layout, not args.asynchronous)
            print(f"WAL archiving into {layout.root} is on")
            if restart:
                print("restart PostgreSQL to apply archive_mode")
            if not args.asynchronous:
                print("commits now wait for `paysaga backup stream`: keep it running")
            return 0
        if args.backup_command == "base":
            print(f"base backup: {backup.base_backup(database_url, layout)}")
            temporal_db = args.temporal_db or settings.data_dir / "temporal.db"
            if temporal_db.exists():
                print(f"Temporal store: {backup.copy_temporal_store(temporal_db, layout)}")
            return 0
        return _stream(database_url, layout)
    except backup.BackupError as exc:
        print(f"paysaga {args.command}: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"paysaga {args.command}: cannot reach PostgreSQL ({reason}); check"
            " PAYSAGA_DATABASE_URL and that the server runs",
            file=sys.stderr,
        )
        return 1


def _backup_dir(args: argparse.Namespace, settings: Settings) -> Path:
    if args.backup_dir:
        return Path(args.backup_dir).resolve()
    configured = os.environ.get("PAYSAGA_BACKUP_DIR")
    return Path(configured).resolve() if configured else settings.data_dir.resolve() / "backup"


def _stream(database_url: str, layout: backup.BackupLayout) -> int:
    layout.prepare()
    backup.create_slot(database_url)
    receiver = subprocess.Popen(
        backup.receiver_argv(database_url, layout), user=backup.server_os_user()
    )
    print(f"receiving the WAL into {layout.stream} (Ctrl-C stops)", flush=True)

    def stop(_signum: int, _frame: object) -> None:
        receiver.send_signal(signal.SIGINT)  # pg_receivewal flushes and exits

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return receiver.wait()


def _restore(args: argparse.Namespace, settings: Settings, layout: backup.BackupLayout) -> int:
    pgdata = (args.pgdata or settings.data_dir / "postgres").resolve()
    base = backup.restore(layout, pgdata, force=args.force)
    print(f"restored {base} into {pgdata}; it recovers every WAL record in {layout.root}")
    if args.temporal_db:
        print(f"Temporal store: {backup.restore_temporal_store(layout, args.temporal_db)}")
    if args.start:
        backup.start_server(pgdata, str(pgdata), pgdata / "log")
        url = f"postgresql://postgres:@/postgres?host={pgdata}"
        backup.wait_until_promoted(url)
        print("PostgreSQL is open; take a new base backup (`paysaga backup base`)")
    else:
        print("start PostgreSQL on it: it replays the WAL, then opens")
    return 0
