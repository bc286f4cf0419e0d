"""Each merchant's events are numbered 1, 2, 3, ... in commit order: no gap, no repeat, no
number a reader could see before the one below it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from psycopg import AsyncConnection

from paysaga.store import Store
from paysaga.store.events import append_event
from tests.events.conftest import emit, eventually, new_customer, new_merchant

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


async def test_rolled_back_transaction_leaves_no_event_and_gives_its_number_back(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    await emit(store, merchant_id, 1)

    with pytest.raises(RuntimeError, match="the change failed"):
        async with store.pool.connection() as conn, conn.transaction():
            lost = await append_event(
                conn, merchant_id, "payment.created", "payment", "dep_lost", {"id": "dep_lost"}
            )
            assert lost.sequence == 2
            raise RuntimeError("the change failed after its event was written")
    [after] = await emit(store, merchant_id, 1)

    events, _ = await store.for_merchant(merchant_id).list_events(
        after=0, event_type=None, limit=10
    )
    assert [e.sequence for e in events] == [1, 2]
    assert "dep_lost" not in {e.aggregate_id for e in events}
    assert after.sequence == 2 and after.id != lost.id
    async with store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM event_deliveries WHERE event_id = %s", (lost.id,)
        )
        assert await cur.fetchone() == (0,)


async def test_uncommitted_event_makes_the_merchants_next_writer_wait_and_no_other(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    customer_id = await new_customer(store, merchant_id)
    other_id = await new_merchant(store)
    other_customer_id = await new_customer(store, other_id)
    await emit(store, merchant_id, 3)
    books = store.for_merchant(merchant_id)

    async with store.pool.connection() as conn:
        async with conn.transaction():
            fourth = await append_event(
                conn, merchant_id, "payment.created", "payment", "dep_slow", {"id": "dep_slow"}
            )
            next_writer = asyncio.create_task(insert_payment(store, merchant_id, customer_id))
            # The next writer is queued behind the merchant's row lock, not numbering past it.
            await eventually(lambda: blocked_by(conn, store))
            assert not next_writer.done()
            seen, _ = await books.list_events(after=0, event_type=None, limit=10)
            assert [e.sequence for e in seen] == [1, 2, 3]
            # Another merchant's writer does not wait for this transaction.
            await asyncio.wait_for(insert_payment(store, other_id, other_customer_id), timeout=30)
            assert await sequences_of(store, other_id) == [1]
            assert not next_writer.done()
        payment_id = await asyncio.wait_for(next_writer, timeout=30)

    events, _ = await books.list_events(after=0, event_type=None, limit=10)
    assert [(e.sequence, e.aggregate_id) for e in events][3:] == [(4, "dep_slow"), (5, payment_id)]
    assert fourth.sequence == 4


async def test_two_merchants_number_their_events_independently(store: Store) -> None:
    first = await new_merchant(store)
    second = await new_merchant(store)

    await asyncio.gather(emit(store, first, 20), emit(store, second, 20), emit(store, first, 5))

    assert await sequences_of(store, first) == list(range(1, 26))
    assert await sequences_of(store, second) == list(range(1, 21))
