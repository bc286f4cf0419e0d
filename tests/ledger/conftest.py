"""Fixtures of the ledger tests: an engine on the session database, fresh owners per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger


@pytest.fixture
def ledger(db_pool: AsyncConnectionPool) -> Ledger:
    """The ledger engine on the session's database."""
    return Ledger(db_pool)


NewId = Callable[[str], str]


@pytest.fixture
def new_id() -> NewId:
    """A new unique owner id or idempotency key at every call, so tests never collide."""
    return lambda name: f"{name}-{uuid.uuid4().hex[:16]}"
