"""The group commit's failure paths, on the real PostgreSQL.

A race retried, a batch split around a database error, an answer lost after its commit, two
engines on the same customers, a writer stalled on a row lock (its time-out, its neighbours
unharmed), a full queue, a stop with calls left. Each test asserts what a caller sees (answers,
errors and their codes) and what the books hold (balances, ledger transactions, events).

Where two things must happen in an order, the test makes it so (a barrier, a row lock held by
the test, asyncio running gathered calls in order before the writer they wake): no sleep.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ledger.models import Account, AccountKind
from ledger.postings import AccountKey
from tests.wallet.conftest import Books, wallet_audit
from tests.wallet.locks import holding_accounts, until_a_writer_waits_on_a_lock
from wallet import storage
from wallet.engine import WalletEngine
from wallet.errors import WalletBusy, WalletStopped, WalletTimeout, WalletUnavailable
from wallet.limits import WriterLimits
from wallet.models import Bet, Call, Decision, Win

pytestmark = pytest.mark.asyncio(loop_scope="session")

CASH = AccountKind.customer_wallet
P = "prov"


def tx() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


def bet(m: str, c: str, amount: int, tx_id: str | None = None, round_id: str = "r1") -> Bet:
    return Bet(
        m, c, P, tx_id or tx(), game_id="g", round_id=round_id, amount=amount, currency="EUR"
    )


async def ledger_transactions(pool: AsyncConnectionPool[Any], m: str, tx_id: str) -> int:
    """How many ledger transactions the call `tx_id` of merchant `m` posted."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM ledger_transactions WHERE idempotency_key = %s",
            (f"wallet:{m}:{P}:{tx_id}",),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def event_count(pool: AsyncConnectionPool[Any], m: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM events WHERE merchant_id = %s", (m,))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def customer_on_writer(books: Books, engine: WalletEngine, m: str, writer: int) -> str:
    """A new customer (1,000 of cash) whose calls go to `writer` of `engine`."""
    for _ in range(64):
        customer_id = await books.customer(m, cash=1_000)
        if engine.writer_of(m, customer_id) == writer:
            return customer_id
    raise AssertionError(f"no customer routed to writer {writer}")


# ---------------------------------------------------------------------- a race retried


class RacingEngine(WalletEngine):
    """An engine whose first batch, read and decided, waits at `meeting` before it writes: two
    of them have both read the database before either writes, as two racing writers."""

    def __init__(self, database_url: str, meeting: asyncio.Barrier, **kw: Any) -> None:
        super().__init__(database_url, **kw)
        self._meeting = meeting
        self._met = False

    async def _gather(
        self,
        conn: AsyncConnection[Any],
        decisions: Sequence[Decision],
        accounts: dict[AccountKey, Account],
    ) -> storage.Writes:
        if not self._met:
            self._met = True
            await self._meeting.wait()
        return await super()._gather(conn, decisions, accounts)


async def test_a_transaction_id_taken_by_a_racing_writer_is_decided_again(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    first, second = await books.customer(m, cash=1_000), await books.customer(m, cash=1_000)
    meeting = asyncio.Barrier(2)
    async with (
        RacingEngine(postgres_url, meeting, writers=1) as one,
        RacingEngine(postgres_url, meeting, writers=1) as two,
    ):
        # the same transaction id under two customers: both read "new", both write it
        decisions = await asyncio.gather(
            one.submit(bet(m, first, 300, tx_id="t-race")),
            two.submit(bet(m, second, 300, tx_id="t-race")),
        )
    assert sorted(d.outcome for d in decisions) == ["accepted", "duplicate_transaction"]
    assert one.stats.retries + two.stats.retries == 1  # the loser's unique violation, retried
    cash = sorted([await books.balance(m, first, CASH), await books.balance(m, second, CASH)])
    assert cash == [700, 1_000]
    assert await ledger_transactions(db_pool, m, "t-race") == 1
    assert await event_count(db_pool, m) == 1


# ---------------------------------------------------------------------- a batch split


async def test_a_database_error_fails_only_its_call_and_the_batch_commits_the_rest(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    customers = [await books.customer(m, cash=1_000) for _ in range(4)]
    calls: list[Call] = [bet(m, c, 100 * (i + 1)) for i, c in enumerate(customers)]
    culprit = bet(m, customers[1], 50, round_id="r\x00")  # text PostgreSQL refuses
    calls.insert(2, culprit)
    async with WalletEngine(postgres_url, writers=1) as engine:
        # gathered calls are all queued before the writer they wake runs: one batch
        results = await asyncio.gather(*(engine.submit(c) for c in calls), return_exceptions=True)
    assert isinstance(results[2], psycopg.DataError)  # the API answers it 422
    assert results[2].sqlstate is not None  # refused by the database, not by the driver
    assert [r.outcome for r in results if isinstance(r, Decision)] == ["accepted"] * 4
    assert engine.stats.splits == 1
    assert [await books.balance(m, c, CASH) for c in customers] == [900, 800, 700, 600]
    assert await ledger_transactions(db_pool, m, culprit.transaction_id) == 0
    assert await event_count(db_pool, m) == 4


# ---------------------------------------------------------------------- an answer lost


class AnswerLosingEngine(WalletEngine):
    """An engine that loses the answer of its first commit: the connection drops once COMMIT
    has been answered, before the decisions reach the callers (a network cut at that moment)."""

    lost = False

    async def _run_batch(
        self, conn: AsyncConnection[Any], calls: Sequence[Call], first: list[Decision]
    ) -> list[Decision]:
        decisions = await super()._run_batch(conn, calls, first)
        if not self.lost:
            self.lost = True
            await conn.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return decisions


async def test_an_answer_lost_after_its_commit_is_answered_once_and_posts_once(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=1_000)
    async with AnswerLosingEngine(postgres_url, writers=1) as engine:
        placed, won = await asyncio.gather(
            engine.submit(bet(m, c, 300, tx_id="b1")),
            engine.submit(Win(m, c, P, "w1", "b1", 450, round_closed=True)),
        )
        again = await engine.submit(bet(m, c, 300, tx_id="b1"))
    # the callers' first answers are the committed ones, marked as replays of them
    # The callers' first answers, though the retry found them booked: not replays to them.
    assert not placed.replayed and placed.outcome == "accepted"
    assert placed.answer["balance"]["cash"] == 700
    assert not won.replayed and won.answer["balance"]["cash"] == 1_150
    assert again.replayed and again.answer == placed.answer
    assert engine.stats.retries == 1
    assert await ledger_transactions(db_pool, m, "b1") == 1
    assert await ledger_transactions(db_pool, m, "w1") == 1
    assert await books.balance(m, c, CASH) == 1_150
    assert await event_count(db_pool, m) == 2


# ---------------------------------------------------------------------- two engines


async def test_two_engines_on_the_same_customers_book_each_call_once(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    customers = [await books.customer(m, cash=10_000) for _ in range(4)]
    bets = [bet(m, c, 100 + i, round_id=f"r{i}") for c in customers for i in range(10)]
    wins = [
        Win(m, b.customer_id, P, tx(), b.transaction_id, 2 * b.amount, round_closed=True)
        for b in bets
    ]
    async with (
        WalletEngine(postgres_url, writers=2) as one,
        WalletEngine(postgres_url, writers=3) as two,
    ):
        calls: Sequence[Call]
        for calls in (bets, wins):  # every call sent to both, at once
            pairs = await asyncio.gather(
                *(asyncio.gather(one.submit(call), two.submit(call)) for call in calls)
            )
            for a, b in pairs:
                assert a.outcome == b.outcome == "accepted"
                assert a.answer == b.answer
                assert sorted([a.replayed, b.replayed]) == [False, True]
    for c in customers:
        assert await books.balance(m, c, CASH) == 10_000 + sum(100 + i for i in range(10))
    for tx_id in [call.transaction_id for call in bets] + [call.transaction_id for call in wins]:
        assert await ledger_transactions(db_pool, m, tx_id) == 1
    assert await event_count(db_pool, m) == len(bets) + len(wins)
    report = await wallet_audit(db_pool)
    assert report.ok, report.format()


# ---------------------------------------------------------------------- a stalled writer


@pytest.mark.parametrize(
    "limits",
    [
        WriterLimits(lock_timeout_ms=500, statement_timeout_ms=60_000),
        WriterLimits(lock_timeout_ms=60_000, statement_timeout_ms=1_000),
    ],
    ids=["lock_timeout", "statement_timeout"],
)
async def test_a_writer_stalled_on_a_row_lock_times_out_and_its_neighbours_are_booked(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any], limits: WriterLimits
) -> None:
    m = await books.merchant()
    async with WalletEngine(postgres_url, writers=2, limits=limits) as engine:
        stuck = await customer_on_writer(books, engine, m, 0)
        neighbour = await customer_on_writer(books, engine, m, 0)  # same writer, same batch
        elsewhere = await customer_on_writer(books, engine, m, 1)
        async with holding_accounts(db_pool, m, stuck):
            results = await asyncio.gather(
                engine.submit(bet(m, stuck, 100)),
                engine.submit(bet(m, neighbour, 200)),
                engine.submit(bet(m, elsewhere, 300)),
                return_exceptions=True,
            )
            assert isinstance(results[0], WalletTimeout) and results[0].code == "wallet_timeout"
            assert results[0].retry_after_seconds == 1
            assert [r.outcome for r in results[1:] if isinstance(r, Decision)] == ["accepted"] * 2
            # still locked: the writer goes on with its other customers' calls
            later = await engine.submit(bet(m, neighbour, 50))
            assert later.accepted
        retried = await engine.submit(bet(m, stuck, 100))  # the lock gone, booked
    assert retried.accepted and retried.answer["balance"]["cash"] == 900
    assert engine.stats.timeouts == 2  # the batch, then the stuck customer's calls alone
    assert await books.balance(m, neighbour, CASH) == 750
    assert await books.balance(m, elsewhere, CASH) == 700
    assert await books.balance(m, stuck, CASH) == 900
    assert await event_count(db_pool, m) == 4


async def test_a_batch_with_two_stuck_customers_fails_the_rest_at_once(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any]
) -> None:
    """Two customers of a split batch timed out: the database is taken to be slow for everyone,
    and the batch's other calls fail at once rather than each after its own wait."""
    m = await books.merchant()
    limits = WriterLimits(lock_timeout_ms=300, statement_timeout_ms=60_000)
    async with WalletEngine(postgres_url, writers=1, limits=limits) as engine:
        stuck = [await books.customer(m, cash=1_000) for _ in range(2)]
        neighbour = await books.customer(m, cash=1_000)
        async with holding_accounts(db_pool, m, stuck[0]), holding_accounts(db_pool, m, stuck[1]):
            results = await asyncio.gather(
                *(engine.submit(bet(m, c, 100)) for c in [*stuck, neighbour]),
                return_exceptions=True,
            )
            assert all(isinstance(r, WalletTimeout) for r in results), results
            assert engine.stats.timeouts == 3  # the batch, then each stuck customer alone
            later = await engine.submit(bet(m, neighbour, 100))  # its own batch: booked
        assert later.accepted
    assert [await books.balance(m, c, CASH) for c in [*stuck, neighbour]] == [1_000, 1_000, 900]


async def test_a_database_that_does_not_answer_fails_the_call_after_the_connect_timeout() -> None:
    """A writer whose database accepts the connection but never answers (a hung server, a dead
    proxy): the call fails `wallet_unavailable` after the connect time-out, with no answer lost
    (nothing was sent)."""
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://wallet@127.0.0.1:{silent.getsockname()[1]}/paysaga"
        limits = WriterLimits(connect_timeout_seconds=2)
        async with WalletEngine(url, writers=1, limits=limits) as engine:
            with pytest.raises(WalletUnavailable) as refused:
                await engine.submit(bet("mer_x", "cus_x", 100))
    assert refused.value.code == "wallet_unavailable"
    assert refused.value.retry_after_seconds == 1


# ---------------------------------------------------------------------- a full queue


async def test_a_full_queue_refuses_the_call_at_once_and_it_is_booked_when_sent_again(
    books: Books, postgres_url: str
) -> None:
    m = await books.merchant()
    c = await books.customer(m, cash=1_000)
    calls = [bet(m, c, 100) for _ in range(3)]
    async with WalletEngine(postgres_url, writers=1, limits=WriterLimits(queue_max=2)) as engine:
        # asyncio runs the three gathered calls before the writer the first one wakes: the
        # third finds the writer's queue holding two
        results = await asyncio.gather(*(engine.submit(c) for c in calls), return_exceptions=True)
        assert [r.outcome for r in results[:2] if isinstance(r, Decision)] == ["accepted"] * 2
        refused = results[2]
        assert isinstance(refused, WalletBusy) and refused.code == "wallet_busy"
        assert refused.retry_after_seconds == 1
        assert engine.stats.busy == 1
        assert await books.balance(m, c, CASH) == 800
        again = await engine.submit(calls[2])
    assert again.accepted and not again.replayed
    assert await books.balance(m, c, CASH) == 700


# ---------------------------------------------------------------------- a stop


async def test_stop_fails_the_calls_it_leaves_and_books_none_of_them(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    limits = WriterLimits(
        lock_timeout_ms=60_000, statement_timeout_ms=60_000, stop_grace_seconds=0.2
    )
    engine = WalletEngine(postgres_url, writers=1, limits=limits)
    await engine.start()
    stuck, queued = await books.customer(m, cash=1_000), await books.customer(m, cash=1_000)
    async with holding_accounts(db_pool, m, stuck):
        in_flight = asyncio.gather(
            engine.submit(bet(m, stuck, 100)),
            engine.submit(bet(m, queued, 100)),
            return_exceptions=True,
        )
        await until_a_writer_waits_on_a_lock(db_pool)  # their batch is the writer's, stalled
        behind, _ = await asyncio.gather(
            engine.submit(bet(m, queued, 200)), engine.stop(), return_exceptions=True
        )
        results = [*await in_flight, behind]
        assert all(isinstance(r, WalletStopped) for r in results), results
        assert {r.code for r in results if isinstance(r, WalletStopped)} == {"wallet_stopped"}
        with pytest.raises(WalletStopped):
            await engine.submit(bet(m, queued, 300))
    assert await books.balance(m, stuck, CASH) == 1_000
    assert await books.balance(m, queued, CASH) == 1_000
    assert await event_count(db_pool, m) == 0


# ---------------------------------------------------------------------- events numbered after commit


async def numbers(pool: AsyncConnectionPool[Any], m: str) -> list[int | None]:
    """The merchant's event numbers in the order the events were written."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sequence FROM events WHERE merchant_id = %s ORDER BY written_order", (m,)
        )
        return [row[0] for row in await cur.fetchall()]


async def test_writers_events_are_numbered_after_commit_without_a_reader(
    books: Books, postgres_url: str, db_pool: AsyncConnectionPool[Any]
) -> None:
    m = await books.merchant()
    customers = [await books.customer(m, cash=1_000) for _ in range(4)]
    async with WalletEngine(postgres_url, writers=4) as engine:
        decisions = await asyncio.gather(
            *(engine.submit(bet(m, c, 10, round_id=f"r{n}")) for c in customers for n in range(5))
        )
        assert all(d.accepted for d in decisions)
        # the engine's sequencer numbers them in the background: no feed read needed
        while None in (found := await numbers(db_pool, m)):
            await asyncio.sleep(0.02)

    assert sorted(n for n in found if n is not None) == list(range(1, 21))
    assert found == sorted(n for n in found if n is not None)  # in the order written
