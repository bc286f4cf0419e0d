"""The ops audit trail: one entry per operator action (a review, a redelivery, ...)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class OpsActionRow(TableRow):
    """A row of `ops_audit_log`: who did what to which target."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


class OpsAudit(Tables):
    """Appends to and pages through `ops_audit_log`."""

    async def record_ops_action(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any]
    ) -> OpsActionRow:
        """Append one operator action to the audit trail."""
        row = await self._one(
            OpsActionRow,
            "INSERT INTO ops_audit_log (actor, action, target, detail)"
            " VALUES (%s, %s, %s, %s) RETURNING *",
            (actor, action, target, json.dumps(detail)),
        )
        assert row is not None
        return row

    async def list_ops_actions(
        self, *, limit: int, starting_after: int | None
    ) -> tuple[list[OpsActionRow], bool]:
        """Newest first; the cursor is the id of the last entry of the previous page."""
        rows = await self._all(
            OpsActionRow,
            "SELECT * FROM ops_audit_log"
            " WHERE (%(after)s::bigint IS NULL OR id < %(after)s)"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"after": starting_after, "limit": limit + 1},
        )
        return rows[:limit], len(rows) > limit
