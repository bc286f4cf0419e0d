"""Alembic environment: migrations run online against the URL set by `paysaga.database.run_migrations`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

import ledger.tables  # noqa: F401  (registers the ledger tables)
import paysaga.schema  # noqa: F401  (registers the payments tables)

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    """Run every pending migration in one connection."""
    connectable = engine_from_config(
        context.config.get_section(context.config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # Online-safe: waiting for a table's lock (held by a running API or worker) blocks
            # every query queued behind the migration; give up instead (paysaga.database).
            lock_timeout_ms = int(context.config.attributes.get("lock_timeout_ms", 10_000))
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {lock_timeout_ms}")
            context.run_migrations()


run_migrations_online()
