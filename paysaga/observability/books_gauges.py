"""Gauges of the books read from PostgreSQL on a schedule, and the scheduled ledger audit.

The API runs `BooksWatch` beside its requests: every `metrics_refresh_seconds` it reads the
payments waiting in a non-final status (by status and age bucket) and the event feed's outbox
(backlog, oldest pending delivery, dead letters); every `ledger_audit_interval_seconds` it runs
the ledger audit (`paysaga ledger audit`'s checks) under a PostgreSQL advisory lock, so that two
API processes never audit at once. Every API process serves the same gauges: dashboards and
alerts take their `max`. Audit runs are counters: sum them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from psycopg_pool import AsyncConnectionPool

from domain.payments import PaymentStatus

log = logging.getLogger(__name__)

WAITING_STATUSES = tuple(status.value for status in PaymentStatus if not status.is_terminal)
# (label, upper bound in seconds): a payment's age in its current status, bounded labels.
AGE_BUCKETS = (
    ("lt_1m", 60),
    ("1m_5m", 300),
    ("5m_15m", 900),
    ("15m_1h", 3600),
    ("1h_24h", 86400),
    ("gt_24h", None),
)
AUDIT_LOCK_KEY = 0x7061_7973_6167_61  # "paysaga": one audit at a time across API processes

PAYMENTS_WAITING = Gauge(
    "paysaga_payments_waiting",
    "Payments in a non-final status, by status and time since their last change (age_bucket).",
    ["status", "age_bucket"],
)
OUTBOX_PENDING = Gauge(
    "paysaga_outbox_pending_deliveries", "Event deliveries to merchants not yet delivered."
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "paysaga_outbox_oldest_pending_age_seconds",
    "Age of the oldest event delivery still pending (0 when none is).",
)
OUTBOX_DEAD_LETTERS = Gauge(
    "paysaga_outbox_dead_letters", "Event deliveries given up (dead letters) awaiting an operator."
)
GAUGES_REFRESHED = Gauge(
    "paysaga_books_gauges_refreshed_timestamp_seconds",
    "When the gauges read from PostgreSQL were last refreshed (Unix time).",
)
AUDIT_RUNS = Counter(
    "paysaga_ledger_audit_runs",
    "Scheduled ledger audits, by result: passed, failed (a check found rows), error (not run).",
    ["result"],
)
AUDIT_DURATION = Histogram(
    "paysaga_ledger_audit_duration_seconds",
    "Time a scheduled ledger audit took.",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)
AUDIT_FAILED_CHECKS = Gauge(
    "paysaga_ledger_audit_failed_checks", "Checks the last scheduled ledger audit found failing."
)
AUDIT_LAST_RUN = Gauge(
    "paysaga_ledger_audit_last_run_timestamp_seconds",
    "When this process last completed a scheduled ledger audit (Unix time).",
)

for _result in ("passed", "failed", "error"):
    AUDIT_RUNS.labels(_result)  # every result present from the start: rate() needs the zeros

WAITING_SQL = f"""
SELECT status,
       CASE {" ".join(f"WHEN now() - updated_at < interval '{bound} seconds' THEN '{label}'" for label, bound in AGE_BUCKETS if bound is not None)}
            ELSE '{AGE_BUCKETS[-1][0]}' END,
       count(*)
FROM payments WHERE status = ANY(%s) GROUP BY 1, 2
"""
# The outbox: the events past each merchant's cursor (its oldest, the cursor's head) and the
# redeliveries pending, and the dead letters. One row per merchant read, never the backlog.
OUTBOX_SQL = """
WITH behind AS (
    SELECT m.last_event_sequence - c.delivered_through AS pending,
        (SELECT e.created_at FROM events e
         WHERE e.merchant_id = c.merchant_id AND e.sequence > c.delivered_through
         ORDER BY e.sequence LIMIT 1) AS oldest
    FROM webhook_cursors c JOIN merchants m ON m.id = c.merchant_id
    WHERE m.last_event_sequence > c.delivered_through
), exceptions AS (
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
        min(created_at) FILTER (WHERE status = 'pending') AS oldest,
        count(*) FILTER (WHERE status = 'dead') AS dead
    FROM event_deliveries WHERE status IN ('pending', 'dead')
)
SELECT (SELECT coalesce(sum(pending), 0) FROM behind)::bigint + x.pending,
       coalesce(extract(epoch FROM now() - LEAST((SELECT min(oldest) FROM behind), x.oldest)), 0),
       x.dead
FROM exceptions x
"""


async def refresh_books_gauges(pool: AsyncConnectionPool[Any]) -> None:
    """Read the waiting payments and the outbox; set their gauges (zeros included)."""
    async with pool.connection() as conn:
        waiting = await (await conn.execute(WAITING_SQL, [list(WAITING_STATUSES)])).fetchall()
        outbox = await (await conn.execute(OUTBOX_SQL)).fetchone()
    counts = {(status, bucket): count for status, bucket, count in waiting}
    for status in WAITING_STATUSES:
        for bucket, _ in AGE_BUCKETS:
            PAYMENTS_WAITING.labels(status, bucket).set(counts.get((status, bucket), 0))
    pending, oldest_age, dead = outbox or (0, 0, 0)
    OUTBOX_PENDING.set(pending)
    OUTBOX_OLDEST_PENDING_AGE.set(float(oldest_age))
    OUTBOX_DEAD_LETTERS.set(dead)
    GAUGES_REFRESHED.set(time.time())


async def audit_now(pool: AsyncConnectionPool[Any]) -> str | None:
    """Run the ledger audit unless another process is running it; its result, None if skipped."""
    from paysaga.audit import audit_books  # the ledger engine: imported when first needed

    async with pool.connection() as lock:
        cur = await lock.execute("SELECT pg_try_advisory_lock(%s)", [AUDIT_LOCK_KEY])
        row = await cur.fetchone()
        if not (row and row[0]):
            return None
        started = time.monotonic()
        try:
            report = await audit_books(pool)
        except Exception:
            log.exception("the scheduled ledger audit did not run")
            AUDIT_RUNS.labels("error").inc()
            return "error"
        finally:
            await lock.execute("SELECT pg_advisory_unlock(%s)", [AUDIT_LOCK_KEY])
    AUDIT_DURATION.observe(time.monotonic() - started)
    failed = [check for check in report.checks if not check.passed]
    AUDIT_FAILED_CHECKS.set(len(failed))
    AUDIT_LAST_RUN.set(time.time())
    result = "passed" if not failed else "failed"
    AUDIT_RUNS.labels(result).inc()
    for check in failed:
        log.error("ledger audit check %s failed: %s", check.name, check.detail)
    return result


class BooksWatch:
    """The schedule of the gauges' refresh and of the ledger audit, in one background task."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        refresh_seconds: float,
        audit_interval_seconds: float,
    ) -> None:
        self._pool = pool
        self._refresh_seconds = refresh_seconds
        self._audit_interval_seconds = audit_interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._refresh_seconds > 0 or self._audit_interval_seconds > 0:
            self._task = asyncio.create_task(self._run(), name="books-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        next_audit = time.monotonic() + min(self._refresh_seconds, 5.0)  # soon after a start
        tick = min(s for s in (self._refresh_seconds, self._audit_interval_seconds) if s > 0)
        while True:
            if self._refresh_seconds > 0:
                try:
                    await refresh_books_gauges(self._pool)
                except Exception as exc:  # the database: try again at the next tick
                    log.warning("books gauges not refreshed: %r", exc)
            if self._audit_interval_seconds > 0 and time.monotonic() >= next_audit:
                try:
                    await audit_now(self._pool)
                except Exception as exc:  # the lock's connection: count it, try next time
                    log.warning("the scheduled ledger audit did not run: %r", exc)
                    AUDIT_RUNS.labels("error").inc()
                next_audit = time.monotonic() + self._audit_interval_seconds
            await asyncio.sleep(tick)
