"""The dispatcher's claims: one merchant's deliveries go to one dispatcher at a time, in sequence
order; a retry holds the merchant's later events back; an expired lease is claimed again."""

from __future__ import annotations

import pytest

from paysaga.observability.books_gauges import (
    OUTBOX_DEAD_LETTERS,
    OUTBOX_OLDEST_PENDING_AGE,
    OUTBOX_PENDING,
    refresh_books_gauges,
)
from paysaga.store import Store
from paysaga.store.deliveries import ClaimedDelivery
from paysaga.store.events import NewEvent, append_events
from paysaga.store.pages import Window
from tests.events.conftest import delivery_states, emit, new_merchant

pytestmark = pytest.mark.asyncio(loop_scope="session")

LANES = 1000  # every merchant of the database with something due, whichever tests made them


async def claim(store: Store, merchant_id: str, per_lane: int = 100) -> list[ClaimedDelivery]:
    """What a claim hands out of this merchant's deliveries."""
    claimed = await store.claim_deliveries(LANES, per_lane, lease_seconds=30)
    return [d for d in claimed if d.merchant_id == merchant_id]


async def backdate(store: Store, merchant_id: str, column: str) -> None:
    """Move the merchant's lease or its head's next attempt into the past, as if its time had
    come (the cursor holds both, for the whole lane)."""
    assert column in ("lease_until", "next_attempt_at")
    async with store.pool.connection() as conn:
        await conn.execute(
            f"UPDATE webhook_cursors SET {column} = now() - interval '1 second'"
            " WHERE merchant_id = %s",
            (merchant_id,),
        )


async def test_claim_leases_a_merchants_deliveries_in_order_to_one_dispatcher(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    other_id = await new_merchant(store)
    events = await emit(store, merchant_id, 5)
    await emit(store, other_id, 2)

    claimed = await store.claim_deliveries(LANES, 3, lease_seconds=30)
    again = await store.claim_deliveries(LANES, 100, lease_seconds=30)

    first = [d for d in claimed if d.merchant_id == merchant_id]
    assert [d.sequence for d in first] == [1, 2, 3]
    assert [d.event_id for d in first] == [e.id for e in events[:3]]
    assert [d.sequence for d in claimed if d.merchant_id == other_id] == [1, 2]
    # Sequences 4 and 5 wait behind the leased ones: no second dispatcher sends them meanwhile.
    assert {d.merchant_id for d in again} & {merchant_id, other_id} == set()
    assert await store.mark_delivered(first[0])
    assert await claim(store, merchant_id) == []  # 2 is leased: still the lane's
    await store.release_deliveries(first[1:])
    assert [d.sequence for d in await claim(store, merchant_id)] == [2, 3, 4, 5]


async def test_retry_is_scheduled_later_and_holds_back_the_merchants_later_events(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    await emit(store, merchant_id, 3)
    [head, *rest] = await claim(store, merchant_id)

    outcome = await store.schedule_retry(head, "the merchant answered 500", 60, give_up_days=3)
    await store.release_deliveries(rest)

    assert outcome is not None and outcome.status == "pending"
    states = await delivery_states(store, merchant_id)
    assert (states[0]["attempts"], states[0]["last_error"]) == (1, "the merchant answered 500")
    assert states[0]["next_attempt_at"] > states[1]["next_attempt_at"]
    assert await claim(store, merchant_id) == []  # 2 and 3 are due, but 1 is not yet
    await backdate(store, merchant_id, "next_attempt_at")
    assert [d.sequence for d in await claim(store, merchant_id)] == [1, 2, 3]


async def test_expired_lease_is_claimed_again_and_the_old_holder_writes_nothing(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    await emit(store, merchant_id, 2)
    crashed = await claim(store, merchant_id)

    await backdate(store, merchant_id, "lease_until")
    taken_over = await claim(store, merchant_id)

    assert [d.event_id for d in taken_over] == [d.event_id for d in crashed]
    assert not await store.mark_delivered(crashed[0])
    assert await store.renew_lease(crashed[1], 30) is None
    assert await store.mark_delivered(taken_over[0])
    assert [s["status"] for s in await delivery_states(store, merchant_id)] == [
        "delivered",
        "pending",
    ]


async def test_dead_delivery_no_longer_holds_back_the_lane(store: Store) -> None:
    merchant_id = await new_merchant(store)
    await emit(store, merchant_id, 2)
    [head, second] = await claim(store, merchant_id)

    assert await store.mark_dead(head, "the merchant answered 410")
    await store.release_deliveries([second])

    assert [d.sequence for d in await claim(store, merchant_id)] == [2]
    dead, _ = await store.for_merchant(merchant_id).list_dead_deliveries(Window[str](10))
    assert [(d.sequence, d.last_error) for d in dead] == [(1, "the merchant answered 410")]


async def test_claim_behind_a_deep_backlog_hands_out_the_lanes_head_and_moves_with_it(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    async with store.pool.connection() as conn, conn.transaction():
        await append_events(
            conn,
            merchant_id,
            [NewEvent("payment.created", "payment", f"dep_{n}", {"n": n}) for n in range(2_000)],
        )

    first = await claim(store, merchant_id, per_lane=10)
    for delivery in first:
        assert await store.mark_delivered(delivery)
    await store.release_deliveries(first[-1:])
    second = await claim(store, merchant_id, per_lane=10)

    assert [d.sequence for d in first] == list(range(1, 11))
    assert [d.sequence for d in second] == list(range(11, 21))
    states = await delivery_states(store, merchant_id)
    assert [s["status"] for s in states[9:12]] == ["delivered", "pending", "pending"]


async def test_outbox_gauges_count_the_events_behind_each_cursor(store: Store) -> None:
    merchant_id = await new_merchant(store)
    await emit(store, merchant_id, 3)
    [head, *rest] = await claim(store, merchant_id)
    assert await store.mark_dead(head, "http_410")
    await store.release_deliveries(rest)

    await refresh_books_gauges(store.pool)

    # Other tests' merchants share the database: at least this one's two pending and one dead.
    assert OUTBOX_PENDING._value.get() >= 2
    assert OUTBOX_DEAD_LETTERS._value.get() >= 1
    assert OUTBOX_OLDEST_PENDING_AGE._value.get() >= 0


async def test_events_a_dead_writer_left_unnumbered_are_numbered_and_claimed(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    # Committed, then the writer's process died before its sequencer ran: no number yet.
    async with store.pool.connection() as conn, conn.transaction():
        written = await append_events(
            conn,
            merchant_id,
            [NewEvent("wallet.transaction", "wallet_transaction", f"t{n}", {}) for n in range(3)],
        )
    assert [e.sequence for e in written] == [None, None, None]

    claimed = await claim(store, merchant_id)

    assert [(d.sequence, d.event_id) for d in claimed] == [
        (n, e.id) for n, e in enumerate(written, start=1)
    ]
