"""Group commit for the game wallet: many calls, one database transaction, each its own answer.

As TigerBeetle batches transfers: a fixed number of writer tasks, each owning one database
connection. A call goes to the writer of its customer (so a customer's calls keep their arrival
order) and waits for its own decision. A writer takes everything queued since its last batch (up
to `batch_max`) and runs it in one transaction of two round trips (psycopg pipeline mode):

1. BEGIN; lock the batch's customers' cash and bonus accounts (ascending ids); read their
   status, bets, tombstones, closed rounds, active bonuses and recorded answers (`storage`).
2. Apply the calls in order with `wallet.rules` against that state, in memory: a refusal is one
   call's answer and never fails its neighbours.
3. Lock the merchant-wide accounts the postings move (game, bonus funding: ascending ids), post
   every ledger transaction, the calls' records, bets, tombstones, rounds, bonuses and events
   (unnumbered) with set-based statements, and COMMIT.
4. Answer the calls, and wake the engine's event sequencer (`paysaga.store.sequencer`), which
   numbers the batch's committed events in the background: no batch holds a merchant-wide row
   until its commit, so one merchant's batches commit side by side.

A batch the database refuses as a race (a transaction id taken meanwhile by another customer's
writer, a deadlock, a lost connection) is read and decided again: every write is keyed, so a
committed batch replays. Any other failure splits the batch, so that it fails only its culprit.

Writers have limits (`WriterLimits`): a lock and a statement time-out on their connections, a
connect time-out, and a bounded queue. A batch that hits a time-out is split by customer, so
that only the stuck customer's calls fail (`wallet_timeout`); a full queue refuses the call at
once (`wallet_busy`); `stop()` fails the calls it leaves (`wallet_stopped`). Each is a 503 with
`Retry-After`: the call, sent again, is booked once (or replayed, if it was booked after all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.errors import (
    DeadlockDetected,
    LockNotAvailable,
    QueryCanceled,
    SerializationFailure,
    UniqueViolation,
)

from ledger.models import Account
from ledger.postings import AccountKey
from paysaga.database import connection_kwargs
from paysaga.observability.wallet_metrics import count_batch
from paysaga.store.sequencer import EventSequencer
from wallet import rules, storage
from wallet.batch_book import GAME_SHARD, BatchBook
from wallet.errors import WalletBusy, WalletStopped, WalletTimeout, WalletUnavailable
from wallet.limits import WriterLimits
from wallet.models import Call, Decision, WalletState

log = logging.getLogger("paysaga.wallet")

TIMEOUTS = (LockNotAvailable, QueryCanceled)
"""The writer's own time-outs (checked before RACES: they are OperationalErrors too)."""
RACES = (UniqueViolation, DeadlockDetected, SerializationFailure, psycopg.OperationalError)
"""Failures after which the same batch, read again, can succeed."""
MAX_ATTEMPTS = 8
TIMEOUTS_BEFORE_GIVING_UP = 2
"""Customers of a split batch that may time out before the rest of it fails at once: one stuck
customer costs its neighbours one more wait, a database slow for everyone not one per customer."""


@dataclass
class EngineStats:
    """What the writers did, for benchmarks and metrics."""

    batches: int = 0
    calls: int = 0
    retries: int = 0
    splits: int = 0
    timeouts: int = 0  # batches that hit the lock or statement time-out
    busy: int = 0  # calls refused because their writer's queue was full

    @property
    def mean_batch(self) -> float:
        return self.calls / self.batches if self.batches else 0.0


@dataclass
class _Pending:
    call: Call
    future: asyncio.Future[Decision] = field(repr=False)


def _unmark_own_replays(decisions: list[Decision], first: list[Decision]) -> None:
    """On a retry, a call the first attempt decided anew and now finds booked with that same
    answer was committed by that attempt (its answer was lost, e.g. with the connection): its
    caller never had it, so it is no replay. The first attempt keeps its decisions in `first`."""
    if not first:
        first.extend(decisions)
        return
    for index, (now, before) in enumerate(zip(decisions, first, strict=True)):
        if now.replayed and not before.replayed and now.answer == before.answer:
            decisions[index] = replace(now, replayed=False)


def _retrieved(future: asyncio.Future[Decision]) -> None:
    if not future.cancelled():
        future.exception()


def _caused(error: Exception, cause: BaseException) -> Exception:
    """`error`, raised from `cause` (logged with it)."""
    error.__cause__ = cause
    return error


class WalletEngine:
    """The wallet's writers over `database_url`; `start()` before use, `stop()` after."""

    def __init__(
        self,
        database_url: str,
        *,
        writers: int = 4,
        batch_max: int = 512,
        house_owner_id: str = "house",
        limits: WriterLimits | None = None,
    ) -> None:
        self._url = database_url
        self._batch_max = batch_max
        self.limits = limits or WriterLimits()
        self._queues: list[asyncio.Queue[_Pending]] = [
            asyncio.Queue(self.limits.queue_max) for _ in range(writers)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._connections: set[AsyncConnection[Any]] = set()  # the writers' (closed by stop)
        self._book = BatchBook(house_owner_id)
        self._sequencer = EventSequencer(database_url)
        self.stats = EngineStats()

    async def start(self) -> None:
        """Start the writers (each connects on its first batch, and again after a failure)."""
        self._stopping = False
        self._sequencer.start()
        self._tasks = [
            asyncio.create_task(self._writer_of_shard(queue, i), name=f"wallet-writer-{i}")
            for i, queue in enumerate(self._queues)
        ]

    async def stop(self) -> None:
        """Refuse new calls, let the queued ones commit (for `stop_grace_seconds` at most), then
        stop the writers. A call left unanswered fails `wallet_stopped` at once: its caller does
        not wait for an answer that will never come (sent again, it is booked or replayed)."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.limits.stop_grace_seconds):
                for queue in self._queues:
                    await queue.join()
        for task in self._tasks:
            task.cancel()  # a writer's batch in flight fails in `_writer`
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for conn in self._connections:  # one a writer opened while it was being stopped
            await conn.close()
        self._connections.clear()
        for queue in self._queues:
            left: list[_Pending] = []
            while not queue.empty():
                left.append(queue.get_nowait())
                queue.task_done()
            self._abandon(left)
        await self._sequencer.stop()

    async def __aenter__(self) -> WalletEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def submit(self, call: Call) -> Decision:
        """Decide and commit one call; its decision once its batch committed."""
        if self._stopping:
            raise WalletStopped("the wallet is stopping: send the call again")
        if not self._tasks:
            raise RuntimeError("the wallet engine is not started")
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a caller that gave up leaves no unread error
        queue = self._queues[self.writer_of(call.merchant_id, call.customer_id)]
        try:
            queue.put_nowait(_Pending(call, future))
        except asyncio.QueueFull:
            self.stats.busy += 1
            future.cancel()
            raise WalletBusy("the wallet's writer of this customer is busy: retry") from None
        # Shielded: a caller that gives up (a client's timeout) leaves its call to commit.
        return await asyncio.shield(future)

    def writer_of(self, merchant_id: str, customer_id: str) -> int:
        """The writer (0 to writers - 1) that books the customer's calls, in arrival order."""
        return hash((merchant_id, customer_id)) % len(self._queues)

    # ------------------------------------------------------------------ a writer

    async def _writer_of_shard(self, queue: asyncio.Queue[_Pending], index: int) -> None:
        GAME_SHARD.set(index)  # this task's batches move the game account's shard `index`
        await self._writer(queue)

    async def _writer(self, queue: asyncio.Queue[_Pending]) -> None:
        conn: AsyncConnection[Any] | None = None
        try:
            while True:
                batch = [await queue.get()]
                while len(batch) < self._batch_max and not queue.empty():
                    batch.append(queue.get_nowait())
                try:
                    conn = await self._commit(conn, batch)
                finally:
                    self._abandon(batch)  # stopped mid-batch: its answers will never come
                    for _ in batch:
                        queue.task_done()
        finally:
            if conn is not None:
                await conn.close()

    async def _commit(
        self, conn: AsyncConnection[Any] | None, batch: list[_Pending]
    ) -> AsyncConnection[Any] | None:
        """Run the batch until it commits; settle every call's future. The connection after."""
        calls = [pending.call for pending in batch]
        first: list[Decision] = []  # what the first attempt decided (it may have committed)
        started = time.monotonic()
        for attempt in range(MAX_ATTEMPTS):
            try:
                conn = await self._connected(conn)
            except psycopg.Error as exc:  # no database: the next batch tries again
                self._fail(batch, _caused(WalletUnavailable("the wallet's database is down"), exc))
                return None
            try:
                decisions = await self._run_batch(conn, calls, first)
            except TIMEOUTS as exc:
                conn = await self._after_failure(conn)
                self.stats.timeouts += 1
                return await self._split_timed_out(conn, batch, exc)
            except RACES as exc:
                conn = await self._after_failure(conn)
                if attempt == MAX_ATTEMPTS - 1:
                    self._fail(batch, _caused(WalletUnavailable("the batch kept racing"), exc))
                    return conn
                self.stats.retries += 1
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
                continue
            except Exception as exc:
                conn = await self._after_failure(conn)
                return await self._split_or_fail(conn, batch, exc)
            self.stats.batches += 1
            self.stats.calls += len(calls)
            # Numbered after the commit, in the background: the answers do not wait for it.
            self._sequencer.wake(e.merchant_id for d in decisions for e in d.events)
            for pending, decision in zip(batch, decisions, strict=True):
                if not pending.future.done():
                    pending.future.set_result(decision)
            count_batch(calls, decisions, time.monotonic() - started)
            return conn
        raise AssertionError("unreachable")

    async def _split_or_fail(
        self, conn: AsyncConnection[Any] | None, batch: list[_Pending], exc: Exception
    ) -> AsyncConnection[Any] | None:
        """A batch that cannot commit: each call alone, so that only the culprit fails."""
        if len(batch) == 1:
            self._fail(batch, exc)
            return conn
        self.stats.splits += 1
        for pending in batch:
            conn = await self._commit(conn, [pending])
        return conn

    async def _split_timed_out(
        self, conn: AsyncConnection[Any] | None, batch: list[_Pending], exc: Exception
    ) -> AsyncConnection[Any] | None:
        """A batch that hit a time-out: each customer's calls apart, so that a customer whose
        rows another transaction holds fails alone. After TIMEOUTS_BEFORE_GIVING_UP customers
        timed out, the database is slow for everyone: the rest fails at once."""
        groups: dict[tuple[str, str], list[_Pending]] = {}
        for pending in batch:
            groups.setdefault((pending.call.merchant_id, pending.call.customer_id), []).append(
                pending
            )
        error = _caused(WalletTimeout("the wallet's database did not answer in time"), exc)
        if len(groups) == 1:
            self._fail(batch, error)
            return conn
        self.stats.splits += 1
        timed_out = 0
        for group in groups.values():
            if timed_out >= TIMEOUTS_BEFORE_GIVING_UP:
                self._fail(group, error)
                continue
            timeouts_before = self.stats.timeouts
            conn = await self._commit(conn, group)
            timed_out += self.stats.timeouts - timeouts_before
        return conn

    @staticmethod
    def _fail(batch: list[_Pending], exc: Exception) -> None:
        log.warning("%d wallet call(s) failed: %r", len(batch), exc, exc_info=exc)
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    @classmethod
    def _abandon(cls, batch: list[_Pending]) -> None:
        """Fail the calls of `batch` still unanswered: the writers stopped."""
        left = [pending for pending in batch if not pending.future.done()]
        if left:
            cls._fail(left, WalletStopped("the wallet stopped before answering: send it again"))

    async def _connected(self, conn: AsyncConnection[Any] | None) -> AsyncConnection[Any]:
        """The writer's connection, opened with its time-outs if it has none."""
        if conn is not None and not conn.closed:
            return conn
        limits = self.limits
        conn = await AsyncConnection.connect(
            self._url,
            autocommit=True,
            connect_timeout=limits.connect_timeout_seconds,
            **connection_kwargs(),
        )
        self._connections = {c for c in self._connections if not c.closed} | {conn}
        try:
            await conn.execute(
                "SELECT set_config('lock_timeout', %s, false),"
                " set_config('statement_timeout', %s, false)",
                (f"{limits.lock_timeout_ms}ms", f"{limits.statement_timeout_ms}ms"),
            )
        except psycopg.Error:
            await conn.close()
            raise
        return conn

    async def _after_failure(
        self, conn: AsyncConnection[Any] | None
    ) -> AsyncConnection[Any] | None:
        """None: a connection that failed a batch is closed, the next attempt takes a new one.

        Not rolled back and kept: after a deadlock in a pipelined batch, a kept connection
        failed every later batch with `prepared statement "_pg3_8" does not exist` (psycopg
        3.3.9, seen in `make dr-drill`): its cache of prepared statements no longer matched
        the server's, and its customers' calls answered 500 for good. A new connection costs
        a few milliseconds, after a failure only.
        """
        if conn is not None and not conn.closed:
            await conn.close()
        return None

    # ------------------------------------------------------------------ one transaction

    async def _run_batch(
        self, conn: AsyncConnection[Any], calls: Sequence[Call], first: list[Decision]
    ) -> list[Decision]:
        """Read, decide, write and commit the batch: two round trips. `first` keeps the first
        attempt's decisions (a retry's replay of what that attempt committed is no replay)."""
        await self._book.ensure_accounts(conn, calls)
        async with conn.pipeline() as pipeline:
            await conn.execute("BEGIN")
            state, accounts = await storage.read_state(conn, storage.wanted(calls))
            decisions = [self._decide(state, call) for call in calls]
            _unmark_own_replays(decisions, first)
            writes = await self._gather(conn, decisions, accounts)
            events = await storage.send_writes(conn, writes)
            await conn.execute("COMMIT")
            await pipeline.sync()
            for cursor in events:
                await cursor.fetchall()
        return decisions

    @staticmethod
    def _decide(state: WalletState, call: Call) -> Decision:
        decision = rules.decide(state, call)
        rules.apply(state, decision)
        return decision

    async def _gather(
        self,
        conn: AsyncConnection[Any],
        decisions: Sequence[Decision],
        accounts: dict[AccountKey, Account],
    ) -> storage.Writes:
        """The decisions as the batch's writes, their postings on real accounts."""
        return await self._book.gather(conn, decisions, accounts)
