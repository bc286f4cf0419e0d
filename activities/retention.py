"""The retention activity: purge the idempotency records and the events past their retention."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from paysaga.retention import purge_expired_events, purge_idempotency_records
from paysaga.settings import EVENT_RETENTION_DAYS_MIN


@dataclass
class PurgeInput:
    api_hours: int
    ledger_days: int


@dataclass
class PurgeResult:
    api_idempotency_keys: int
    ledger_idempotency: int
    events: int = 0  # absent from the results recorded before events existed


class RetentionActivities:
    # The events' retention is the worker's setting, not the schedule's input: schedules made
    # before events existed keep their arguments, and the workflow's commands stay as recorded.
    def __init__(
        self, pool: AsyncConnectionPool, event_retention_days: int = EVENT_RETENTION_DAYS_MIN
    ) -> None:
        self._pool = pool
        self._event_retention_days = event_retention_days

    @activity.defn(name="retention.purge_idempotency")
    async def purge_idempotency(self, purge: PurgeInput) -> PurgeResult:
        """Delete expired API and ledger idempotency records, and expired events; how many."""
        deleted = await purge_idempotency_records(self._pool, purge.api_hours, purge.ledger_days)
        events = await purge_expired_events(self._pool, self._event_retention_days)
        return PurgeResult(deleted["api_idempotency_keys"], deleted["ledger_idempotency"], events)
