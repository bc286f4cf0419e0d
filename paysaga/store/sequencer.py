"""The feed's sequencer: numbers each merchant's committed events 1, 2, 3, ... after commit.

A change writes its event unnumbered in its own transaction (`paysaga.store.events`), so no
writer waits for another merchant-wide lock. Numbering happens afterwards, in a short
transaction of its own per merchant: lock the merchant's row (only sequencers take it), then, in
a statement whose snapshot begins after the lock was granted, number the merchant's events that
are committed and still unnumbered, in the order they were written, from the merchant's
`last_event_sequence` + 1, and raise that counter. Sequencers of one merchant run one at a time,
each sees everything the one before it numbered, and an event is numbered only once it is
committed: the numbers have no gap and no repeat, and a reader that stores the last number it
processed misses nothing (an event committed late is numbered late, after the ones before it).

A sequencer that dies before its COMMIT numbered nothing: the next one numbers the same events.
Sequencers run where numbers are needed: the wallet engine after its batches (in the
background), a feed read and the webhook dispatcher before they read (so an event is never
waiting for a sequencer that died), and `EventSequencer` for a process of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import AsyncConnection

from paysaga.database import connection_kwargs

log = logging.getLogger("paysaga.events")

BATCH = 10_000  # events numbered per transaction at most (a merchant with more takes several)

# NO KEY UPDATE: a writer's event holds a KEY SHARE lock on its merchant (the foreign key) until
# its commit, which FOR UPDATE would wait for; sequencers still exclude each other.
_LOCK = "SELECT 1 FROM merchants WHERE id = %s FOR NO KEY UPDATE"

# Its snapshot is taken after `_LOCK` returned: it sees every number the previous holder gave.
_STAMP = """
WITH pending AS (
    SELECT e.id, row_number() OVER (ORDER BY e.written_order) AS n
    FROM events e
    WHERE e.merchant_id = %(merchant_id)s AND e.sequence IS NULL
    ORDER BY e.written_order
    LIMIT %(batch)s
), base AS (
    SELECT last_event_sequence AS top FROM merchants WHERE id = %(merchant_id)s
), stamped AS (
    UPDATE events e
    SET sequence = base.top + pending.n,
        payload = jsonb_set(e.payload, '{sequence}', to_jsonb(base.top + pending.n))
    FROM pending, base
    WHERE e.id = pending.id
    RETURNING e.sequence
)
UPDATE merchants SET last_event_sequence = (SELECT max(sequence) FROM stamped)
WHERE id = %(merchant_id)s AND EXISTS (SELECT 1 FROM stamped)
RETURNING last_event_sequence, (SELECT count(*) FROM stamped)
"""

_PENDING_MERCHANTS = "SELECT DISTINCT merchant_id FROM events WHERE sequence IS NULL"

_HAS_PENDING = "SELECT EXISTS (SELECT 1 FROM events WHERE merchant_id = %s AND sequence IS NULL)"


async def number_merchant(conn: AsyncConnection[Any], merchant_id: str) -> int:
    """Number the merchant's committed, unnumbered events (on an autocommit connection, in
    transactions of its own); how many."""
    numbered = 0
    while True:
        async with conn.pipeline(), conn.transaction():
            await conn.execute(_LOCK, (merchant_id,))
            cur = await conn.execute(_STAMP, {"merchant_id": merchant_id, "batch": BATCH})
        row = await cur.fetchone()
        count = int(row[1]) if row else 0
        numbered += count
        if count < BATCH:
            return numbered


async def number_merchants(conn: AsyncConnection[Any], merchant_ids: Iterable[str]) -> None:
    """`number_merchant` for each merchant, in id order."""
    for merchant_id in sorted(set(merchant_ids)):
        await number_merchant(conn, merchant_id)


async def number_if_pending(conn: AsyncConnection[Any], merchant_id: str) -> None:
    """Number the merchant's events if it has unnumbered ones (a read-only check otherwise)."""
    async with conn.transaction():  # ended before numbering: that takes its own
        cur = await conn.execute(_HAS_PENDING, (merchant_id,))
        row = await cur.fetchone()
    if row and row[0]:
        await number_merchant(conn, merchant_id)


async def number_all(conn: AsyncConnection[Any]) -> None:
    """Number every merchant's committed, unnumbered events (the sweep after a crash)."""
    async with conn.transaction():
        cur = await conn.execute(_PENDING_MERCHANTS)
        merchant_ids = [row[0] for row in await cur.fetchall()]
    await number_merchants(conn, merchant_ids)


class EventSequencer:
    """A background task numbering the merchants it is woken for, on a connection of its own:
    writers `wake()` it after their commits and do not wait for it."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._merchants: set[str] = set()
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-sequencer")

    async def stop(self) -> None:
        """Stop, then number what it was woken for (what is left, a reader or the dispatcher
        numbers): the task first, so that the connection has one user."""
        if self._task is None:
            return
        task, self._task = self._task, None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self._close()  # a numbering cut short rolls back with its connection
        with contextlib.suppress(TimeoutError, psycopg.Error, OSError):
            async with asyncio.timeout(5):
                await self._number()
        await self._close()

    def wake(self, merchant_ids: Iterable[str]) -> None:
        self._merchants.update(merchant_ids)
        self._woken.set()

    async def _run(self) -> None:
        while True:
            await self._woken.wait()
            try:
                await self._number()
            except Exception:  # numbered later: by the next wake, a reader or the dispatcher
                log.warning("the event sequencer failed; retrying", exc_info=True)
                await self._close()
                await asyncio.sleep(0.2)

    async def _number(self) -> None:
        self._woken.clear()
        merchants, self._merchants = self._merchants, set()
        if not merchants:
            return
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await AsyncConnection.connect(
                    self._url, autocommit=True, **connection_kwargs()
                )
            await number_merchants(self._conn, merchants)
        except BaseException:
            self._merchants |= merchants  # tried again
            self._woken.set()
            raise

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None
