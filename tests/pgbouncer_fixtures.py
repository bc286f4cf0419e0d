"""Pytest plugin: PgBouncer (Debian's package) in transaction mode in front of the session's
PostgreSQL, on a free loopback port. `make test` installs the package when missing (as root)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.pgbouncer import PgBouncer, start_pgbouncer
from devtools.stack import StackError


@pytest.fixture(scope="session")
def pgbouncer(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode before the session's server (a pool of 20 connections)."""
    try:
        bouncer = start_pgbouncer(postgres_url, tmp_path_factory.mktemp("pgbouncer"))
    except StackError as exc:
        pytest.fail(f"{exc} (make test installs it when run as root)")
    yield bouncer
    bouncer.stop()
