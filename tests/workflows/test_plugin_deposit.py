"""A whole deposit saga through an adapter installed with pip (tests/providers/plugin_example)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from activities.providers import ProviderActivities
from providers.adapter import AdapterConfig
from providers.base import PaymentProvider
from providers.conformance import settled
from providers.registry import build_adapter
from providers.sandbox import SandboxProvider
from tests.psp_fixtures import SandboxPSPProcess
from tests.workflows.harness import AMOUNT, PROVIDERS, SagaHarness


class PluginSagaHarness(SagaHarness):
    """The sagas with their provider calls made by the `example` adapter, at the sandbox PSP."""

    def __init__(self, *args: Any, adapters: dict[str, PaymentProvider]) -> None:
        super().__init__(*args)
        self.adapters = adapters

    def _activities(self) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        local, _ = super()._activities()
        provider = ProviderActivities(self.adapters)
        calls: list[Callable[..., Awaitable[Any]]] = [
            provider.charge,
            provider.payout,
            provider.final_status,
            provider.refund_charge,
            provider.refund,
        ]
        return local, calls


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def plugin_saga(
    example_plugin: Path,
    receiving_psp: SandboxPSPProcess,
    http: httpx.AsyncClient,
    time_skipping_env: WorkflowEnvironment,
    db_pool: AsyncConnectionPool[Any],
    task_queue: str,
) -> AsyncIterator[PluginSagaHarness]:
    # The harness's provider names, each an account of the example adapter at one sandbox provider.
    endpoints = dict(zip(PROVIDERS, ("sandbox-cards", "sandbox-bank"), strict=True))
    adapters: dict[str, PaymentProvider] = {
        name: build_adapter("example", AdapterConfig(name, f"{receiving_psp.url}/{psp}", http, 5.0))
        for name, psp in endpoints.items()
    }
    harness = PluginSagaHarness(time_skipping_env, db_pool, task_queue, adapters=adapters)
    async with harness.workers():
        yield harness


async def test_deposit_through_plugin_adapter(
    plugin_saga: PluginSagaHarness, receiving_psp: SandboxPSPProcess, http: httpx.AsyncClient
) -> None:
    payment = await plugin_saga.deposit(await plugin_saga.customer())

    seen = await plugin_saga.finished(payment)

    assert (seen.status, seen.wallet_posted) == ("succeeded", AMOUNT)
    # The charge is at the sandbox PSP, made through the plug-in under the saga's key.
    sandbox = SandboxProvider("sandbox-cards", receiving_psp.url, http, 5.0)
    assert (await settled(sandbox, f"{payment.id}:charge")).outcome == "succeeded"
