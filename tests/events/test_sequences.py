"""Each merchant's events are numbered 1, 2, 3, ... in commit order: no gap, no repeat, no
number a reader could see before the one below it. Numbers are given after commit by the
sequencer: no writer waits for another's commit, and a sequencer that dies gives nothing."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg import AsyncConnection

from paysaga.store import Store
from paysaga.store.events import append_event
from tests.events.conftest import emit, new_customer, new_merchant

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def sequences_of(store: Store, merchant_id: str) -> list[int]:
    async with store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sequence FROM events WHERE merchant_id = %s ORDER BY sequence", (merchant_id,)
        )
        return [row[0] for row in await cur.fetchall()]


async def insert_payment(store: Store, merchant_id: str, customer_id: str) -> str:
    payment_id = f"dep_{uuid.uuid4().hex[:16]}"
    await store.insert_payment(
        merchant_id, payment_id, "deposit", customer_id, 1_000, "EUR", None, {}
    )
    return payment_id


async def blocked_by(conn: AsyncConnection, store: Store) -> int:
    """How many backends wait for a lock that this connection's transaction holds."""
    async with store.pool.connection() as observer:
        cur = await observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (conn.info.backend_pid,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_concurrent_payments_of_one_merchant_get_sequences_without_gap_or_repeat(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    customer_id = await new_customer(store, merchant_id)

    payment_ids = await asyncio.gather(
        *(insert_payment(store, merchant_id, customer_id) for _ in range(50))
    )

    events, _ = await store.for_merchant(merchant_id).list_events(
        after=0, event_type=None, limit=100
    )
    assert [e.sequence for e in events] == list(range(1, 51))
    assert sorted(e.aggregate_id for e in events) == sorted(payment_ids)
    assert {e.type for e in events} == {"payment.created"}
    assert all(e.payload["sequence"] == e.sequence for e in events)
    merchant = await store.get_merchant(merchant_id)
    assert merchant is not None and merchant.last_event_sequence == 50


async def test_rolled_back_transaction_leaves_no_event_and_takes_no_number(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    await emit(store, merchant_id, 1)

    with pytest.raises(RuntimeError, match="the change failed"):
        async with store.pool.connection() as conn, conn.transaction():
            lost = await append_event(
                conn, merchant_id, "payment.created", "payment", "dep_lost", {"id": "dep_lost"}
            )
            assert lost.sequence is None  # numbered only once committed
            raise RuntimeError("the change failed after its event was written")
    [after] = await emit(store, merchant_id, 1)

    events, _ = await store.for_merchant(merchant_id).list_events(
        after=0, event_type=None, limit=10
    )
    assert [e.sequence for e in events] == [1, 2]
    assert "dep_lost" not in {e.aggregate_id for e in events}
    assert after.sequence == 2 and after.id != lost.id
    assert all(e.payload["sequence"] == e.sequence for e in events)


async def test_uncommitted_event_holds_no_writer_and_is_numbered_after_those_before_it(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    customer_id = await new_customer(store, merchant_id)
    await emit(store, merchant_id, 3)
    books = store.for_merchant(merchant_id)

    async with store.pool.connection() as conn:
        async with conn.transaction():
            slow = await append_event(
                conn, merchant_id, "payment.created", "payment", "dep_slow", {"id": "dep_slow"}
            )
            # The next writer commits at once: nothing of the merchant is locked until commit.
            payment_id = await asyncio.wait_for(
                insert_payment(store, merchant_id, customer_id), timeout=30
            )
            assert await blocked_by(conn, store) == 0
            seen, _ = await books.list_events(after=0, event_type=None, limit=10)
            # A reader sees the committed one numbered 4; the open one has no number to skip.
            assert [(e.sequence, e.aggregate_id) for e in seen][3:] == [(4, payment_id)]
        assert slow.sequence is None

    events, _ = await books.list_events(after=4, event_type=None, limit=10)
    assert [(e.sequence, e.aggregate_id) for e in events] == [(5, "dep_slow")]
    merchant = await store.get_merchant(merchant_id)
    assert merchant is not None and merchant.last_event_sequence == 5


async def test_sequencer_that_dies_before_commit_numbers_nothing_and_loses_nothing(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    await emit(store, merchant_id, 2)
    async with store.pool.connection() as conn, conn.transaction():
        for n in range(3):
            await append_event(conn, merchant_id, "payment.created", "payment", f"d{n}", {})

    # A sequencer numbers the three, then its process dies before its COMMIT.
    async with await AsyncConnection.connect(store_url(store)) as dying:
        await dying.execute(
            "SELECT 1 FROM merchants WHERE id = %s FOR NO KEY UPDATE", (merchant_id,)
        )
        await dying.execute(
            "UPDATE events SET sequence = 100 + written_order %% 1000"
            " WHERE merchant_id = %s AND sequence IS NULL",
            (merchant_id,),
        )
        async with store.pool.connection() as killer:
            await killer.execute("SELECT pg_terminate_backend(%s)", (dying.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            await dying.execute("COMMIT")

    events, _ = await store.for_merchant(merchant_id).list_events(
        after=0, event_type=None, limit=10
    )
    assert [(e.sequence, e.aggregate_id) for e in events][2:] == [(3, "d0"), (4, "d1"), (5, "d2")]


def store_url(store: Store) -> str:
    """The URL the store's pool connects with."""
    return str(store.pool.conninfo)


async def test_two_merchants_number_their_events_independently(store: Store) -> None:
    first = await new_merchant(store)
    second = await new_merchant(store)

    await asyncio.gather(emit(store, first, 20), emit(store, second, 20), emit(store, first, 5))

    assert await sequences_of(store, first) == list(range(1, 26))
    assert await sequences_of(store, second) == list(range(1, 21))
