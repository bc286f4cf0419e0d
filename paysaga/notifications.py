"""Merchant notifications given up on: the dead-letter list operators read and redeliver from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class DeadLetterRow(TableRow):
    """A row of `merchant_notification_dead_letters`; `state` is dead or redelivering."""

    event_id: str
    payment_id: str
    payment_status: str
    failure_code: str | None
    reason: str
    state: str
    redeliveries: int
    created_at: datetime
    updated_at: datetime


class DeadLetters(Tables):
    """One row per event given up on; a redelivery that succeeds removes it."""

    async def record(
        self,
        event_id: str,
        payment_id: str,
        payment_status: str,
        failure_code: str | None,
        reason: str,
    ) -> None:
        """Park an event (again, after a failed redelivery: with the new reason)."""
        await self._execute(
            "INSERT INTO merchant_notification_dead_letters"
            " (event_id, payment_id, payment_status, failure_code, reason)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO UPDATE SET state = 'dead', reason = EXCLUDED.reason,"
            " updated_at = now() RETURNING event_id",
            (event_id, payment_id, payment_status, failure_code, reason),
        )

    async def get(self, event_id: str) -> DeadLetterRow | None:
        return await self._one(
            DeadLetterRow,
            "SELECT * FROM merchant_notification_dead_letters WHERE event_id = %s",
            (event_id,),
        )

    async def start_redelivery(self, event_id: str) -> DeadLetterRow | None:
        """Mark a dead event as being redelivered; None unless it is dead (absent, or already so)."""
        return await self._one(
            DeadLetterRow,
            "UPDATE merchant_notification_dead_letters SET state = 'redelivering',"
            " redeliveries = redeliveries + 1, updated_at = now()"
            " WHERE event_id = %s AND state = 'dead' RETURNING *",
            (event_id,),
        )

    async def delivered(self, event_id: str) -> None:
        """The merchant took the event at last: it leaves the list."""
        await self._execute(
            "DELETE FROM merchant_notification_dead_letters WHERE event_id = %s RETURNING event_id",
            (event_id,),
        )

    async def list(
        self, limit: int, starting_after: str | None
    ) -> tuple[list[DeadLetterRow], bool]:
        """Newest first; the cursor is the event id of the last row of the previous page."""
        rows = await self._all(
            DeadLetterRow,
            "SELECT * FROM merchant_notification_dead_letters"
            " WHERE %(after)s::text IS NULL OR (created_at, event_id) <"
            "  (SELECT created_at, event_id FROM merchant_notification_dead_letters"
            "   WHERE event_id = %(after)s)"
            " ORDER BY created_at DESC, event_id DESC LIMIT %(limit)s",
            {"after": starting_after, "limit": limit + 1},
        )
        return rows[:limit], len(rows) > limit
