"""Prometheus metrics of the API process, in the default registry that `GET /metrics` serves."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "paysaga_http_requests",
    "HTTP requests served by the API, by route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "paysaga_http_request_duration_seconds",
    "Time to serve an HTTP request of the API, by route template.",
    ["method", "route"],
)
PAYMENTS_STARTED = Counter(
    "paysaga_payments_started",
    "Payment sagas started by the API (a replayed idempotent request starts none).",
    ["kind"],
)
ROUTING_DECISIONS = Counter(
    "paysaga_routing_decisions",
    "Deposits routed by the API, by the reason their first provider account is first"
    " (requested, priority, success_rate, exploration).",
    ["reason"],
)
# Read from PostgreSQL at each scrape (api/routes/metrics.py): the state every process sees.
PROVIDER_BREAKER_STATE = Gauge(
    "paysaga_provider_breaker_state",
    "Each provider account's circuit breaker: 0 closed, 1 half-open, 2 open.",
    ["provider_account"],
)
PROVIDER_BREAKER_FAILURE_RATE = Gauge(
    "paysaga_provider_breaker_failure_rate",
    "The share of the breaker's window of calls that failed as unavailable.",
    ["provider_account"],
)

DATABASE_POOL_CONNECTIONS = Gauge(
    "paysaga_database_pool_connections",
    "Connections of this process's PostgreSQL pool, by state (idle, in_use), and its maximum.",
    ["state"],
)
DATABASE_POOL_REQUESTS_WAITING = Gauge(
    "paysaga_database_pool_requests_waiting", "Requests waiting for a connection of the pool."
)
DATABASE_POOL_WAIT = Counter(
    "paysaga_database_pool_wait_seconds",
    "Time requests spent waiting for a pool connection (rate it: seconds waited per second).",
)
DATABASE_POOL_ERRORS = Counter(
    "paysaga_database_pool_errors", "Connection requests of the pool that failed or timed out."
)


def show_pool(pool: Any) -> None:
    """The pool's state at this scrape (psycopg_pool's stats; the cumulative ones are popped)."""
    stats = pool.pop_stats()
    size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
    DATABASE_POOL_CONNECTIONS.labels("idle").set(available)
    DATABASE_POOL_CONNECTIONS.labels("in_use").set(size - available)
    DATABASE_POOL_CONNECTIONS.labels("max").set(stats.get("pool_max", 0))
    DATABASE_POOL_REQUESTS_WAITING.set(stats.get("requests_waiting", 0))
    DATABASE_POOL_WAIT.inc(stats.get("requests_wait_ms", 0) / 1000)
    DATABASE_POOL_ERRORS.inc(stats.get("requests_errors", 0))


# The worker's payment metrics go through the Temporal SDK's meter (activities/payments.py), to be
# served by the worker's SDK Prometheus endpoint next to the SDK's own metrics.


def install_worker_runtime(
    bind_address: str, histogram_buckets: Mapping[str, Sequence[float]] | None = None
) -> str | None:
    """Set the process's Temporal runtime: SDK logs through `logging`, metrics on Prometheus.

    The metrics (the SDK's and the activities' own) are served at http://<bind_address>/metrics.
    `histogram_buckets`: the bucket bounds of the activities' own histograms, by metric name.
    Call it before any client connects. Returns the address served, or None when disabled (empty
    address, or port 0) or when the port is taken (another worker on this machine has it: give
    each worker process its own PAYSAGA_WORKER_METRICS_ADDRESS).
    """
    logs = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    host, _, port = bind_address.rpartition(":")
    served: str | None = bind_address if host and port not in ("", "0") else None
    runtime: Runtime | None = None
    if served:
        try:
            metrics = PrometheusConfig(
                bind_address=served,
                # Prometheus' conventions: seconds (as floats) with their suffix, `_total` on
                # counters. So our own SDK counters are created without `_total` (the exporter
                # adds it) and our histograms without a unit (their names end in `_seconds`).
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides=histogram_buckets,
            )
            runtime = Runtime(telemetry=TelemetryConfig(logging=logs, metrics=metrics))
        except ValueError as exc:  # "Failed starting Prometheus exporter: Address already in use"
            log.warning("worker metrics disabled: %s", exc)
            served = None
    Runtime.set_default(runtime or Runtime(telemetry=TelemetryConfig(logging=logs)))
    return served
