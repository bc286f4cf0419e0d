"""The breaker in the provider activities, on the real breaker tables: what is skipped, what never is.

A call is skipped only for a key never sent to that account: a retry, a resend or a saga reset
from the Temporal UI (whose new run's call is a first attempt again) may follow a call that
reached the provider, and skipping it as "not processed" would make the saga fail over and
charge again elsewhere. A deposit's compensating refund is not skipped but put off: Temporal
retries it once the breaker's time left has passed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.failures import PROVIDER_NOT_PROCESSED
from activities.providers import (
    BREAKER_OPEN_SECONDS_LEFT,
    ChargeInput,
    ProviderActivities,
    RefundInput,
)
from paysaga.database import open_pool
from paysaga.store.provider_health import ProviderBreakers
from providers.base import Outcome, ProviderResult
from providers.health import FAILED, BreakerPolicy

pytestmark = pytest.mark.asyncio(loop_scope="session")

POLICY = BreakerPolicy(open_seconds=3_600.0)


class CountingProvider:
    """A provider that takes every call; it counts what reached it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.charges: list[str] = []
        self.refunds: list[str] = []

    async def charge(self, *, idempotency_key: str, **_: Any) -> ProviderResult:
        self.charges.append(idempotency_key)
        return ProviderResult(self.name, Outcome.succeeded, operation_id="ch_1")

    async def status(self, idempotency_key: str) -> ProviderResult:
        return ProviderResult(self.name, Outcome.succeeded)

    async def refund(self, *, idempotency_key: str, **_: Any) -> ProviderResult:
        self.refunds.append(idempotency_key)
        return ProviderResult(self.name, Outcome.succeeded, operation_id="re_1")


def setup(
    pool: AsyncConnectionPool[Any],
) -> tuple[ProviderActivities, CountingProvider, ProviderBreakers]:
    """An account of the test's own, its provider and its breaker."""
    provider = CountingProvider(f"test-psp-{uuid.uuid4().hex[:8]}")
    breakers = ProviderBreakers(pool, POLICY)
    return ProviderActivities({provider.name: provider}, breakers), provider, breakers  # type: ignore[dict-item]


def charge_of(provider: CountingProvider) -> ChargeInput:
    payment_id = f"dep_{uuid.uuid4().hex[:16]}"
    return ChargeInput(provider.name, f"{payment_id}:charge", payment_id, 1_000, "EUR", "pm_ok")


async def open_breaker(breakers: ProviderBreakers, account: str) -> None:
    for _ in range(POLICY.minimum_calls):
        await breakers.record(account, FAILED, probe=False)


async def test_first_call_of_a_key_is_skipped_while_the_breaker_is_open(
    db_pool: AsyncConnectionPool[Any],
) -> None:
    acts, provider, breakers = setup(db_pool)
    await open_breaker(breakers, provider.name)

    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(acts.charge, charge_of(provider))

    assert refused.value.type == PROVIDER_NOT_PROCESSED and refused.value.non_retryable
    assert refused.value.details[0][BREAKER_OPEN_SECONDS_LEFT] > 3_000
    assert provider.charges == []


async def test_call_of_a_key_sent_before_goes_again_whatever_the_breaker(
    db_pool: AsyncConnectionPool[Any],
) -> None:
    """As a saga reset after its charge landed asks again: a new activity, its first attempt."""
    acts, provider, breakers = setup(db_pool)
    charge = charge_of(provider)
    await ActivityEnvironment().run(acts.charge, charge)
    await open_breaker(breakers, provider.name)

    result = await ActivityEnvironment().run(acts.charge, charge)

    assert result.outcome == Outcome.succeeded
    assert provider.charges == [charge.idempotency_key] * 2  # sent again under its key


async def test_compensating_refund_is_put_off_while_the_breaker_is_open(
    db_pool: AsyncConnectionPool[Any],
) -> None:
    acts, provider, breakers = setup(db_pool)
    await open_breaker(breakers, provider.name)
    key = f"dep_{uuid.uuid4().hex[:16]}"
    refund = RefundInput(provider.name, f"{key}:refund", key, f"{key}:charge", 1_000, "EUR")

    with pytest.raises(ApplicationError) as put_off:
        await ActivityEnvironment().run(acts.refund_charge, refund)

    # Retried by Temporal (the compensation never gives up), after the time left open.
    assert put_off.value.type == PROVIDER_NOT_PROCESSED and not put_off.value.non_retryable
    delay = put_off.value.next_retry_delay
    assert delay is not None and delay.total_seconds() > 3_000
    assert provider.refunds == []


async def test_unreadable_breaker_sends_nothing_and_is_retried(postgres_url: str) -> None:
    pool = await open_pool(postgres_url, 1, 1)
    acts, provider, _ = setup(pool)
    await pool.close()  # the database is gone

    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(acts.charge, charge_of(provider))

    assert refused.value.type == PROVIDER_NOT_PROCESSED and not refused.value.non_retryable
    assert provider.charges == []
