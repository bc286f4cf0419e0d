"""Provider breakers in PostgreSQL: shared by processes, probe leases taken once, events written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from paysaga.database import open_pool
from paysaga.store.provider_health import ProviderBreakers
from providers.health import ANSWERED, FAILED, BreakerPolicy, BreakerState

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Open for a moment only, so that the probes' turn comes within the test.
POLICY = BreakerPolicy(open_seconds=0.2)


@pytest_asyncio.fixture(loop_scope="session")
async def two_pools(postgres_url: str) -> AsyncIterator[tuple[AsyncConnectionPool, ...]]:
    """Two pools of their own, as two worker processes would have."""
    pools = (await open_pool(postgres_url, 1, 4), await open_pool(postgres_url, 1, 4))
    yield pools
    for pool in pools:
        await pool.close()


def an_account() -> str:
    return f"test-psp-{uuid.uuid4().hex[:8]}"


def a_key() -> str:
    """A call's idempotency key, never seen before."""
    return f"dep_{uuid.uuid4().hex[:16]}:charge"


async def until_probes_may_go(breakers: ProviderBreakers, account: str) -> None:
    while (await breakers.health_of([account]))[account].state == BreakerState.open:
        await asyncio.sleep(0.05)


async def test_breaker_opened_by_one_worker_skips_the_account_in_another(
    two_pools: tuple[AsyncConnectionPool, ...],
) -> None:
    first, second = (ProviderBreakers(pool, POLICY) for pool in two_pools)
    account = an_account()
    for _ in range(5):
        assert (await first.admit(account, a_key())).admitted
        await first.record(account, FAILED, probe=False)

    skipped = await second.admit(account, a_key())

    assert not skipped.admitted
    assert skipped.seconds_left_open > 0
    shown = (await second.health_of([account]))[account]
    assert (shown.state, shown.failure_rate, shown.calls) == ("open", 1.0, 5)
    assert shown.opened_at is not None


async def test_declines_never_open_the_breaker(
    two_pools: tuple[AsyncConnectionPool, ...],
) -> None:
    breakers = ProviderBreakers(two_pools[0], POLICY)
    account = an_account()
    for _ in range(30):
        await breakers.record(account, ANSWERED, probe=False)

    assert (await breakers.admit(account, a_key())).admitted
    assert (await breakers.health_of([account]))[account].state == BreakerState.closed


async def test_half_open_gives_exactly_the_probe_leases_however_many_workers_ask(
    two_pools: tuple[AsyncConnectionPool, ...],
) -> None:
    first, second = (ProviderBreakers(pool, POLICY) for pool in two_pools)
    account = an_account()
    for _ in range(5):
        await first.record(account, FAILED, probe=False)
    await until_probes_may_go(first, account)

    asked = await asyncio.gather(*(b.admit(account, a_key()) for b in (first, second) * 5))

    assert sum(admission.probe for admission in asked) == POLICY.probe_calls
    assert all(admission.admitted == admission.probe for admission in asked)


async def test_probes_answered_close_the_breaker_and_a_failed_probe_opens_it_again(
    two_pools: tuple[AsyncConnectionPool, ...],
) -> None:
    first, second = (ProviderBreakers(pool, POLICY) for pool in two_pools)
    account = an_account()
    for _ in range(5):
        await first.record(account, FAILED, probe=False)
    await until_probes_may_go(first, account)
    assert (await first.admit(account, a_key())).probe
    assert (await second.record(account, FAILED, probe=True)).state == BreakerState.open
    assert not (await second.admit(account, a_key())).admitted

    await until_probes_may_go(first, account)
    for worker in (first, second, first):
        assert (await worker.admit(account, a_key())).probe
    states = [
        (await worker.record(account, ANSWERED, probe=True)).state
        for worker in (first, second, first)
    ]

    assert states == ["half_open", "half_open", "closed"]
    shown = (await second.health_of([account]))[account]
    assert (shown.state, shown.calls, shown.opened_at) == ("closed", 0, None)


async def test_breaker_changes_are_announced_in_every_merchants_feed(
    db_pool: AsyncConnectionPool,
) -> None:
    breakers = ProviderBreakers(db_pool, POLICY)
    account = an_account()
    for _ in range(5):
        await breakers.record(account, FAILED, probe=False)
    await until_probes_may_go(breakers, account)
    assert (await breakers.admit(account, a_key())).probe

    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT merchant_id, payload FROM events"
            " WHERE type = 'provider.health_changed' AND aggregate_id = %s ORDER BY sequence",
            (account,),
        )
        events = await cur.fetchall()
        merchants = await (await conn.execute("SELECT count(*) FROM merchants")).fetchone()
    assert merchants is not None
    assert len(events) == 2 * merchants[0] >= 2
    states = [
        payload["data"]["object"]["health"]["state"]
        for merchant_id, payload in events
        if merchant_id == "mer_dev"
    ]
    assert states == ["open", "half_open"]


async def open_now(breakers: ProviderBreakers, account: str) -> None:
    for _ in range(5):
        await breakers.record(account, FAILED, probe=False)


async def test_key_sent_to_an_account_goes_there_again_whatever_its_breaker(
    db_pool: AsyncConnectionPool,
) -> None:
    """A retry, a resend or a saga reset from the Temporal UI asks again for a key that may have
    landed: skipping it as "not processed" would let the saga charge elsewhere."""
    breakers = ProviderBreakers(db_pool, BreakerPolicy(open_seconds=3_600))
    account, key = an_account(), a_key()
    assert (await breakers.admit(account, key)).admitted
    await open_now(breakers, account)

    again = await breakers.admit(account, key)

    assert (again.admitted, again.probe) == (True, False)
    assert not (await breakers.admit(account, a_key())).admitted  # a new key is skipped


async def test_key_sent_to_one_account_is_never_sent_to_another_unless_refused_there(
    db_pool: AsyncConnectionPool,
) -> None:
    breakers = ProviderBreakers(db_pool, POLICY)
    first, second, key = an_account(), an_account(), a_key()
    assert (await breakers.admit(first, key)).admitted

    elsewhere = await breakers.admit(second, key)
    assert (elsewhere.admitted, elsewhere.sent_elsewhere) == (False, first)

    # The first account answered that it certainly did nothing with it: the other may have it.
    await breakers.record(first, FAILED, probe=False, refused_key=key)
    assert (await breakers.admit(second, key)).admitted
    assert (await breakers.admit(first, key)).sent_elsewhere == second


async def test_own_accounts_breaker_changes_reach_its_merchants_feed_only(
    db_pool: AsyncConnectionPool,
) -> None:
    """A merchant's own account (`pa_...`) is nobody else's business."""
    breakers = ProviderBreakers(db_pool, POLICY)
    account = f"pa_{uuid.uuid4().hex[:24]}"
    owner = (f"mer_{uuid.uuid4().hex[:12]}",)
    async with db_pool.connection() as conn:
        for merchant_id in (owner[0], f"mer_{uuid.uuid4().hex[:12]}"):  # the owner, and another
            await conn.execute(
                "INSERT INTO merchants (id, name) VALUES (%s, %s)", (merchant_id, merchant_id)
            )
        await conn.execute(
            "INSERT INTO provider_accounts (merchant_id, id, adapter, name, priority)"
            " VALUES (%s, %s, 'sandbox', %s, 1)",
            (owner[0], account, account),
        )
    await open_now(breakers, account)

    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT merchant_id, payload FROM events"
            " WHERE type = 'provider.health_changed' AND aggregate_id = %s",
            (account,),
        )
        events = await cur.fetchall()
    assert [(merchant_id, p["data"]["object"]["health"]["state"]) for merchant_id, p in events] == [
        (owner[0], "open")
    ]
