"""The retention activity: purge the idempotency records past their retention."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from paysaga.retention import purge_idempotency_records


@dataclass
class PurgeInput:
    api_hours: int
    ledger_days: int


@dataclass
class PurgeResult:
    api_idempotency_keys: int
    ledger_idempotency: int


class RetentionActivities:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @activity.defn(name="retention.purge_idempotency")
    async def purge_idempotency(self, purge: PurgeInput) -> PurgeResult:
        """Delete expired API and ledger idempotency records; how many of each."""
        deleted = await purge_idempotency_records(self._pool, purge.api_hours, purge.ledger_days)
        return PurgeResult(deleted["api_idempotency_keys"], deleted["ledger_idempotency"])
