"""How a store module runs one statement and turns each result row into its typed row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any, Self, TypeVar

from psycopg import AsyncConnection, AsyncPipeline
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from paysaga.personal_data import PersonalDataCipher
from paysaga.settings import get_settings

Params = tuple[Any, ...] | dict[str, Any]


@dataclass(frozen=True)
class TableRow:
    """A row as read from its table: one frozen dataclass per table, one field per column."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """Build from a `dict_row` result; columns the dataclass does not name are ignored."""
        return cls(**{field.name: row[field.name] for field in fields(cls)})


RowT = TypeVar("RowT", bound=TableRow)


class Tables:
    """The pool the store's resources share, the ways they read it, and the cipher of the
    personal data they keep (the installation's data keys unless told)."""

    def __init__(
        self, pool: AsyncConnectionPool, personal_data: PersonalDataCipher | None = None
    ) -> None:
        self.pool = pool
        self.personal_data = personal_data or PersonalDataCipher.from_settings(get_settings())

    async def _one(self, row_type: type[RowT], sql: str, params: Params) -> RowT | None:
        row = await self._fetch_one(sql, params)
        return None if row is None else row_type.from_row(row)

    async def _fetch_one(self, sql: str, params: Params) -> dict[str, Any] | None:
        """The first result row as PostgreSQL holds it, by column name."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchone()

    async def _fetch_all(self, sql: str, params: Params) -> list[dict[str, Any]]:
        """Every result row as PostgreSQL holds it, by column name."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def _all(self, row_type: type[RowT], sql: str, params: Params) -> list[RowT]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            rows = await cur.fetchall()
        return [row_type.from_row(row) for row in rows]

    async def _execute(self, sql: str, params: Params) -> bool:
        """Run a write; whether it returned a row (RETURNING ... matched)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchone() is not None if cur.description else False

    async def _write(self, sql: str, params: Params) -> bool:
        """`_execute` in one round trip (`one_trip`: BEGIN, the write and COMMIT together)."""
        async with self.pool.connection() as conn:
            async with one_trip(conn):
                cur = await conn.execute(sql, params)
            return await cur.fetchone() is not None if cur.description else False


@asynccontextmanager
async def one_trip(conn: AsyncConnection[Any]) -> AsyncIterator[AsyncPipeline]:
    """A transaction whose BEGIN, statements and COMMIT go to the server in one pipeline: one
    round trip, unless the block reads a result before its end (each read is one more).

    Outside a pipeline psycopg sends BEGIN and COMMIT on round trips of their own; inside one,
    on a connection that is not in autocommit, its implicit BEGIN still waits for its answer. So
    the connection is in autocommit for the block, the BEGIN and COMMIT explicit; on any error
    the transaction is rolled back, and the connection is back out of autocommit after it.
    """
    await conn.set_autocommit(True)
    try:
        async with conn.pipeline() as pipeline:
            await conn.execute("BEGIN")
            yield pipeline
            await conn.execute("COMMIT")
    finally:
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                await conn.rollback()
        finally:
            await conn.set_autocommit(False)
