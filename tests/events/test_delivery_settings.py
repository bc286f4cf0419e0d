"""The delivery settings: retries back off exponentially with jitter up to the cap; a lease
outlasts a request; events are kept at least 30 days."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paysaga.webhook_delivery import retry_delay
from tests.events.conftest import fast_settings


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    def highest(low: float, high: float) -> float:
        return high

    def lowest(low: float, high: float) -> float:
        return low

    ceilings = [retry_delay(n, 1.0, 3600.0, highest) for n in range(15)]
    floors = [retry_delay(n, 1.0, 3600.0, lowest) for n in range(15)]
    assert ceilings[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert floors[:3] == [0.5, 1.0, 2.0]
    assert ceilings[-1] == 3600.0 and floors[-1] == 1800.0
    assert retry_delay(10_000, 1.0, 3600.0, highest) == 3600.0


def test_settings_refuse_a_lease_shorter_than_a_delivery() -> None:
    with pytest.raises(ValidationError, match="LEASE_SECONDS must be longer"):
        fast_settings(webhook_delivery_lease_seconds=5, webhook_delivery_timeout_seconds=10)


def test_settings_refuse_to_keep_events_less_than_30_days() -> None:
    with pytest.raises(ValidationError, match="at least 30 days"):
        fast_settings(event_retention_days=29)
    assert fast_settings(event_retention_days=90).event_retention_days == 90
