"""How a store module runs one statement and turns each result row into its typed row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self, TypeVar

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

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
    """The pool the store's resources share, and the two ways they read it."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def _one(self, row_type: type[RowT], sql: str, params: Params) -> RowT | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            row = await cur.fetchone()
        return None if row is None else row_type.from_row(row)

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
