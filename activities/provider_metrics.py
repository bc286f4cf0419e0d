"""What the provider activities count on the worker's metrics endpoint: requests by answer,
their time, calls skipped, breaker states and transitions."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from temporalio import activity
from temporalio.common import MetricMeter

from paysaga.observability.sdk_meter import counter, histogram_seconds
from providers.base import Answer, ProviderRequestRejected, ProviderResult

# On the worker's metrics endpoint (labels bounded: accounts are configured, operations and
# answers are closed sets). Counters carry `_total` in their names: the SDK's exporter adds none.
PROVIDER_REQUESTS_TOTAL = "paysaga_provider_requests_total"  # {provider_account, operation, answer}
PROVIDER_REQUEST_DURATION = "paysaga_provider_request_duration_seconds"  # histogram, seconds
PROVIDER_CALLS_SKIPPED_TOTAL = "paysaga_provider_calls_skipped_total"  # {..., operation, reason}
BREAKER_STATE = "paysaga_provider_breaker_state"  # as this worker last saw it
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
BREAKER_TRANSITIONS_TOTAL = "paysaga_provider_breaker_transitions_total"  # {..., from, to}
# Latency buckets of PROVIDER_REQUEST_DURATION, in seconds (paysaga/observability/metrics.py).
PROVIDER_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


async def observed(
    account: str, operation: str, call: Callable[[], Awaitable[ProviderResult]]
) -> ProviderResult:
    """Make the call; count it by its answer's classification and time it."""
    started = time.monotonic()
    try:
        result = await call()
    except ProviderRequestRejected:
        count_request(account, operation, Answer.rejected, started)
        raise
    count_request(account, operation, result.outcome.answer, started)
    return result


def worker_meter() -> MetricMeter:
    return activity.metric_meter()


def count_request(account: str, operation: str, answer: Answer, started: float) -> None:
    labels = {"provider_account": account, "operation": operation}
    meter = worker_meter()
    counter(
        meter, PROVIDER_REQUESTS_TOTAL, "Provider requests, by the classification of their answer."
    ).add(1, {**labels, "answer": answer.value})
    histogram_seconds(
        meter, PROVIDER_REQUEST_DURATION, "Time a provider request took, answer or not."
    ).record(time.monotonic() - started, labels)


def count_skipped(account: str, operation: str, reason: str) -> None:
    counter(
        worker_meter(),
        PROVIDER_CALLS_SKIPPED_TOTAL,
        "Provider calls not sent: the breaker is open, or the key was sent to another account.",
    ).add(1, {"provider_account": account, "operation": operation, "reason": reason})


def count_transition(account: str, previous: str, state: str) -> None:
    counter(
        worker_meter(), BREAKER_TRANSITIONS_TOTAL, "Breaker state changes seen by this worker."
    ).add(1, {"provider_account": account, "from": previous, "to": state})
