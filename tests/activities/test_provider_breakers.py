"""The breaker in the provider activities: a retried call is never skipped.

A retry of `provider.charge` may follow a call that reached the provider (its worker died before
it answered). Skipping it as "not processed" would make the saga fail over and charge again
elsewhere, so a retry goes to the same account, under the same idempotency key, whatever the
breaker says; only a first attempt can be skipped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.failures import PROVIDER_NOT_PROCESSED
from activities.providers import ChargeInput, ProviderActivities
from paysaga.store.provider_health import Admission
from providers.base import Outcome, ProviderResult


class OpenBreakers:
    """Every account's breaker open for another 30 s; outcomes are counted."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    async def admit(self, account: str) -> Admission:
        return Admission(admitted=False, seconds_left_open=30.0)

    async def record(self, account: str, mark: str, *, probe: bool) -> str:
        self.recorded.append((account, mark))
        return "open"


class CountingProvider:
    """A provider that takes every charge; it counts what reached it."""

    def __init__(self) -> None:
        self.charges: list[str] = []

    async def charge(self, *, idempotency_key: str, **_: Any) -> ProviderResult:
        self.charges.append(idempotency_key)
        return ProviderResult("sandbox-cards", Outcome.succeeded, operation_id="ch_1")


CHARGE = ChargeInput("sandbox-cards", "dep_1:charge", "dep_1", 1_000, "EUR", "pm_ok")


def environment(attempt: int) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return env


def activities() -> tuple[ProviderActivities, CountingProvider, OpenBreakers]:
    provider, breakers = CountingProvider(), OpenBreakers()
    return ProviderActivities({"sandbox-cards": provider}, breakers), provider, breakers  # type: ignore[dict-item, arg-type]


async def test_first_attempt_is_skipped_while_the_breaker_is_open() -> None:
    acts, provider, _ = activities()

    with pytest.raises(ApplicationError) as refused:
        await environment(attempt=1).run(acts.charge, CHARGE)

    assert refused.value.type == PROVIDER_NOT_PROCESSED and refused.value.non_retryable
    assert provider.charges == []


async def test_retried_charge_goes_to_the_same_account_whatever_the_breaker() -> None:
    acts, provider, breakers = activities()

    result = await environment(attempt=2).run(acts.charge, CHARGE)

    assert result.outcome == Outcome.succeeded
    assert provider.charges == ["dep_1:charge"]  # sent again under the same key, not skipped
    assert [account for account, _ in breakers.recorded] == ["sandbox-cards"]  # still counted
