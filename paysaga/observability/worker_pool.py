"""The worker's PostgreSQL pool on its metrics endpoint (the Temporal SDK's meter), every few
seconds: the same names as the API's pool (`paysaga/observability/metrics.py`), told apart by job."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio.runtime import Runtime

from paysaga.observability.sdk_meter import counter, gauge

POOL_REPORT_SECONDS = 5.0


async def report_pool(pool: Any, stop: asyncio.Event) -> None:
    """Until `stop`: the pool's connections by state, requests waiting, failed requests."""
    meter = Runtime.default().metric_meter
    connections = gauge(
        meter, "paysaga_database_pool_connections", "Connections of this process's pool."
    )
    waiting = gauge(
        meter, "paysaga_database_pool_requests_waiting", "Requests waiting for a connection."
    )
    errors = counter(
        meter, "paysaga_database_pool_errors_total", "Connection requests that failed or timed out."
    )
    while not stop.is_set():
        stats = pool.pop_stats()  # the cumulative ones since the last report
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        connections.set(available, {"state": "idle"})
        connections.set(size - available, {"state": "in_use"})
        connections.set(stats.get("pool_max", 0), {"state": "max"})
        waiting.set(stats.get("requests_waiting", 0))
        errors.add(stats.get("requests_errors", 0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POOL_REPORT_SECONDS)
