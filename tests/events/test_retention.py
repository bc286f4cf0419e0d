"""Events are kept at least 30 days, then purged by the retention activity with their deliveries."""

from __future__ import annotations

import pytest

from activities.retention import PurgeInput, RetentionActivities
from paysaga.retention import purge_expired_events
from paysaga.store import Store
from tests.events.conftest import delivery_states, emit, new_merchant

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_retention_purges_events_past_their_days_and_their_deliveries(store: Store) -> None:
    merchant_id = await new_merchant(store)
    old, kept, new = await emit(store, merchant_id, 3)
    async with store.pool.connection() as conn:
        for event, age in ((old, "31 days"), (kept, "29 days")):
            await conn.execute(
                "UPDATE events SET created_at = now() - %s::interval WHERE id = %s",
                (age, event.id),
            )

    result = await RetentionActivities(store.pool, 30).purge_idempotency(PurgeInput(24, 45))

    assert result.events >= 1
    events, _ = await store.for_merchant(merchant_id).list_events(
        after=0, event_type=None, limit=10
    )
    assert [e.id for e in events] == [kept.id, new.id]
    assert [s["sequence"] for s in await delivery_states(store, merchant_id)] == [2, 3]


async def test_events_are_never_purged_before_30_days(store: Store) -> None:
    with pytest.raises(ValueError, match="at least 30 days"):
        await purge_expired_events(store.pool, 29)


async def test_retention_marks_the_highest_sequence_it_purged_even_when_an_older_one_stays(
    store: Store,
) -> None:
    merchant_id = await new_merchant(store)
    first, second, third = await emit(store, merchant_id, 3)
    async with store.pool.connection() as conn:  # a long transaction's event: newer, yet older
        await conn.execute(
            "UPDATE events SET created_at = now() - interval '31 days' WHERE id = %s", (second.id,)
        )

    await purge_expired_events(store.pool, 30)

    merchant = await store.for_merchant(merchant_id).merchant()
    assert merchant.events_purged_through == second.sequence  # a cursor at 1 would skip it
    events, _ = await store.for_merchant(merchant_id).list_events(
        after=0, event_type=None, limit=10
    )
    assert [e.id for e in events] == [first.id, third.id]
