"""`paysaga deliver-webhooks` killed in the middle of a batch: nothing it claimed is skipped.

The dispatcher runs as its own process, is SIGKILLed while the merchant's endpoint is still
answering one event of its batch, and is started again: every event reaches the merchant at
least once (the one in flight twice, with the same `Paysaga-Event-Id`), still in sequence order.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paysaga.store import Store
from tests.events.conftest import delivery_states, emit, eventually, new_merchant, settled
from tests.events.receiver import MerchantEndpoint

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS = 20
IN_FLIGHT = 8  # the sequence the endpoint is still answering when the dispatcher dies


class Dispatchers:
    """`python -m paysaga.cli deliver-webhooks` processes, each stopped by its PID."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.env = {
            **os.environ,
            "PAYSAGA_ENVIRONMENT": "development",
            "PAYSAGA_DATABASE_URL": database_url,
            "PAYSAGA_DATABASE_POOL_MIN": "1",
            "PAYSAGA_DATABASE_POOL_MAX": "4",
            "PAYSAGA_LOG_FORMAT": "text",
            # A short lease: the killed process's claim is taken over within seconds.
            "PAYSAGA_WEBHOOK_DELIVERY_LEASE_SECONDS": "2",
            "PAYSAGA_WEBHOOK_DELIVERY_TIMEOUT_SECONDS": "1",
            "PAYSAGA_WEBHOOK_DELIVERY_POLL_INTERVAL_SECONDS": "0.05",
            "PAYSAGA_WEBHOOK_DELIVERY_RETRY_INITIAL_SECONDS": "0.1",
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = log_path
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "paysaga.cli", "deliver-webhooks"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def dispatchers(events_database_url: str, tmp_path: Path) -> Iterator[Dispatchers]:
    started = Dispatchers(events_database_url, tmp_path / "deliver-webhooks.log")
    yield started
    started.stop_all()


async def test_dispatcher_killed_mid_batch_sends_every_event_again_never_skips(
    store: Store, dispatchers: Dispatchers
) -> None:
    endpoint = MerchantEndpoint(delay_seconds=0.02)  # answers slowly
    endpoint.start()
    try:
        merchant_id = await new_merchant(store, endpoint.url)
        events = await emit(store, merchant_id, EVENTS)
        endpoint.hold(IN_FLIGHT)

        first = dispatchers.start()
        await eventually(endpoint.holding.is_set, timeout=60)
        states = await delivery_states(store, merchant_id)
        # Mid-batch: the events before the one in flight taken, the ones behind it claimed.
        assert [s["status"] for s in states[: IN_FLIGHT - 1]] == ["delivered"] * (IN_FLIGHT - 1)
        assert all(s["status"] == "pending" and s["lease_until"] for s in states[IN_FLIGHT - 1 :])
        os.kill(first.pid, signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
        endpoint.release()

        second = dispatchers.start()
        states = await settled(store, merchant_id, EVENTS)
        os.kill(second.pid, signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 20) == 0, dispatchers.log_path.read_text()
    finally:
        endpoint.stop()

    assert [s["status"] for s in states] == ["delivered"] * EVENTS
    received = endpoint.received()
    sequences = [r.sequence for r in received]
    assert set(sequences) == set(range(1, EVENTS + 1))  # every sequence, at least once
    assert sequences == sorted(sequences)  # and in order, the one re-sent included
    again = [r for r in received if r.sequence == IN_FLIGHT]
    assert len(again) == 2  # its answer went to a dead process: sent again
    assert {r.event_id for r in again} == {events[IN_FLIGHT - 1].id}
    assert again[0].body == again[1].body
    by_sequence = {r.sequence: r.event_id for r in received}
    assert by_sequence == {e.sequence: e.id for e in events}
