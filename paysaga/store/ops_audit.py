"""The ops audit trail: one entry per operator action (a review, a redelivery, ...)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paysaga.store.pages import Window, keyset_query
from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class OpsActionRow(TableRow):
    """A row of `ops_audit_log`: who did what to which target."""

    id: int
    merchant_id: str | None
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


class OpsAudit(Tables):
    """Appends to and pages through `ops_audit_log`."""

    async def record_ops_action(
        self,
        merchant_id: str | None,
        actor: str,
        action: str,
        target: str | None,
        detail: dict[str, Any],
    ) -> OpsActionRow:
        """Append one operator action (of a merchant; None: of the platform) to the trail."""
        row = await self._one(
            OpsActionRow,
            "INSERT INTO ops_audit_log (merchant_id, actor, action, target, detail)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (merchant_id, actor, action, target, json.dumps(detail)),
        )
        assert row is not None
        return row

    async def list_ops_actions(
        self, merchant_id: str, window: Window[int]
    ) -> tuple[list[OpsActionRow], bool]:
        """Newest first; the cursors are ids of entries."""
        page = keyset_query(
            window,
            newest_first=True,
            key="id",
            cursor_key="%(cursor)s",
            order_by=("id",),
            created="at",
        )
        rows = await self._all(
            OpsActionRow,
            f"SELECT * FROM ops_audit_log WHERE {' AND '.join(['merchant_id = %(merchant_id)s', *page.conditions])}"
            f" ORDER BY {page.order_by} LIMIT %(limit)s",
            {**page.params, "merchant_id": merchant_id},
        )
        return page.rows(rows, window.limit)
