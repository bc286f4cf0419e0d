"""Cursor pages of a list, as Stripe's lists page: `limit` rows after the cursor
(`starting_after`) or just before it (`ending_before`), within a creation window, in the list's
own order either way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Window:
    """Which page of a list: at most `limit` rows after `starting_after` or before
    `ending_before` (ids of rows of the list, at most one of them), created at or after
    `created_from` and before `created_until`."""

    limit: int
    starting_after: str | None = None
    ending_before: str | None = None
    created_from: datetime | None = None
    created_until: datetime | None = None

    @property
    def cursor(self) -> str | None:
        return self.starting_after or self.ending_before


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


def page_query(table: str, window: Window, *, newest_first: bool) -> PageQuery:
    """Keyset paging over `(created_at, id)` of `table` (a merchant's rows: the cursor row is
    looked up under `%(merchant_id)s`). `ending_before` walks the other way and turns the rows
    around, so that a page reads the same whichever cursor reached it."""
    backwards = window.ending_before is not None
    descending = newest_first != backwards
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": window.limit + 1}
    if window.cursor is not None:
        conditions.append(
            f"(created_at, id) {'<' if descending else '>'} (SELECT created_at, id FROM {table}"
            " WHERE id = %(cursor)s AND merchant_id = %(merchant_id)s)"
        )
        params["cursor"] = window.cursor
    if window.created_from is not None:
        conditions.append("created_at >= %(created_from)s")
        params["created_from"] = window.created_from
    if window.created_until is not None:
        conditions.append("created_at < %(created_until)s")
        params["created_until"] = window.created_until
    order = "DESC" if descending else "ASC"
    return PageQuery(conditions, f"created_at {order}, id {order}", params, backwards)
