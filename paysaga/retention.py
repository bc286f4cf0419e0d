"""Retention: idempotency records kept long enough to replay, events as long as the contract says;
then purged by a schedule.

`api_idempotency_keys` are kept `idempotency_key_ttl_hours` (the contract: at least 24 hours).
`ledger_idempotency` records are kept `ledger_idempotency_retention_days`, longer than any saga
can run (30 days), so that no activity retry can outlive the record that makes it idempotent.
`events` are kept `event_retention_days` (the contract: at least 30 days); their webhook
deliveries go with them. `provider_calls` (where each provider call's key was sent) are kept as
long as ledger records.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from paysaga.settings import EVENT_RETENTION_DAYS_MIN
from paysaga.store.events import Events

BATCH = 5_000  # rows per DELETE: short transactions, no long lock on a busy table

PURGES = {
    # An API key's record, answered or abandoned, older than its TTL in hours.
    "api_idempotency_keys": "created_at < now() - make_interval(hours => %(api_hours)s)",
    # A ledger write's record, completed, older than the retention in days.
    "ledger_idempotency": (
        "result IS NOT NULL AND created_at < now() - make_interval(days => %(ledger_days)s)"
    ),
    # Where a provider call's key was sent (the breakers' proof of "not sent"): as long as a
    # ledger write's record, longer than any saga's retries and resends run.
    "provider_calls": "updated_at < now() - make_interval(days => %(ledger_days)s)",
}


async def purge_idempotency_records(
    pool: AsyncConnectionPool, api_hours: int, ledger_days: int
) -> dict[str, int]:
    """Delete expired records in batches; the number deleted per table."""
    params = {"api_hours": api_hours, "ledger_days": ledger_days, "batch": BATCH}
    deleted: dict[str, int] = {}
    for table, expired in PURGES.items():
        deleted[table] = 0
        while True:
            async with pool.connection() as conn:
                cur = await conn.execute(
                    f"DELETE FROM {table} WHERE ctid IN"
                    f" (SELECT ctid FROM {table} WHERE {expired} LIMIT %(batch)s)",
                    params,
                )
                deleted[table] += cur.rowcount
            if cur.rowcount < BATCH:
                break
    return deleted


async def purge_expired_events(pool: AsyncConnectionPool, retention_days: int) -> int:
    """Delete events (and their deliveries) past their retention; how many went."""
    if retention_days < EVENT_RETENTION_DAYS_MIN:  # the settings refuse it too; never purge early
        raise ValueError(f"events are kept at least {EVENT_RETENTION_DAYS_MIN} days")
    return await Events(pool).purge_events(retention_days, BATCH)
