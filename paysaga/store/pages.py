"""Cursor pages of a list, as Stripe's lists page: `limit` rows after the cursor
(`starting_after`) or just before it (`ending_before`), within a creation window, in the list's
own order either way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

RowT = TypeVar("RowT")
CursorT = TypeVar("CursorT", str, int)


@dataclass(frozen=True)
class Window(Generic[CursorT]):
    """Which page of a list: at most `limit` rows after `starting_after` or before
    `ending_before` (ids of rows of the list, at most one of them), created at or after
    `created_from` and before `created_until`."""

    limit: int
    starting_after: CursorT | None = None
    ending_before: CursorT | None = None
    created_from: datetime | None = None
    created_until: datetime | None = None

    @property
    def cursor(self) -> CursorT | None:
        return self.ending_before if self.starting_after is None else self.starting_after


@dataclass(frozen=True)
class PageQuery:
    """The SQL of a page: conditions to AND with the list's own, the ORDER BY, the parameters
    they name, and whether the rows come back in reverse (`ending_before`)."""

    conditions: list[str]
    order_by: str
    params: dict[str, Any]
    backwards: bool

    def rows(self, rows: Sequence[RowT], limit: int) -> tuple[list[RowT], bool]:
        """The page in the list's order, and whether there are more rows past it."""
        page = list(rows[:limit])
        return (page[::-1] if self.backwards else page), len(rows) > limit


def page_query(table: str, window: Window[str], *, newest_first: bool) -> PageQuery:
    """Keyset paging over `(created_at, id)` of `table` (a merchant's rows: the cursor row is
    looked up under `%(merchant_id)s`)."""
    return keyset_query(
        window,
        newest_first=newest_first,
        key="(created_at, id)",
        cursor_key=f"(SELECT created_at, id FROM {table}"
        " WHERE id = %(cursor)s AND merchant_id = %(merchant_id)s)",
        order_by=("created_at", "id"),
        created="created_at",
    )


def keyset_query(
    window: Window[Any],
    *,
    newest_first: bool,
    key: str,
    cursor_key: str,
    order_by: tuple[str, ...],
    created: str,
) -> PageQuery:
    """Keyset paging over `key` (SQL), whose value at the cursor is `cursor_key` (SQL naming
    `%(cursor)s`), ordered by the `order_by` columns, created at column `created`.
    `ending_before` walks the other way and turns the rows around, so that a page reads the same
    whichever cursor reached it."""
    backwards = window.ending_before is not None
    descending = newest_first != backwards
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": window.limit + 1}
    if window.cursor is not None:
        conditions.append(f"{key} {'<' if descending else '>'} {cursor_key}")
        params["cursor"] = window.cursor
    if window.created_from is not None:
        conditions.append(f"{created} >= %(created_from)s")
        params["created_from"] = window.created_from
    if window.created_until is not None:
        conditions.append(f"{created} < %(created_until)s")
        params["created_until"] = window.created_until
    order = "DESC" if descending else "ASC"
    return PageQuery(
        conditions, ", ".join(f"{column} {order}" for column in order_by), params, backwards
    )
