"""The conformance suite (providers.conformance) run on the sandbox adapter and the example plug-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest

from providers.adapter import AdapterConfig, ProviderAdapter
from providers.conformance import AdapterConformance, ReceivedWebhook, Scenarios
from providers.registry import build_adapter
from sandbox_psp.settings import DEV_WEBHOOK_SECRETS
from tests.psp_fixtures import SandboxPSPProcess, WebhookReceiver

# The sandbox PSP's tokens; `pm_timeout` stalls 2 s in tests (tests/psp_fixtures.py).
SANDBOX_SCENARIOS = Scenarios(
    succeeds="pm_ok",
    declines="pm_decline",
    times_out="pm_timeout",
    unavailable="pm_flaky",
    payout_destination="pm_ok",
    authenticates="pm_3ds_required",
)
IMPATIENT_SECONDS = 0.5


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def received_webhook(webhook_receiver: WebhookReceiver) -> ReceivedWebhook:
    async def first_delivery(reference: str) -> tuple[Mapping[str, str], bytes]:
        deliveries = await asyncio.to_thread(webhook_receiver.wait_for, reference)
        return {"Sandbox-Signature": deliveries[0].signature}, deliveries[0].body

    return first_delivery


class TestSandboxAdapter(AdapterConformance):
    @pytest.fixture
    def adapter(self, receiving_psp: SandboxPSPProcess, http: httpx.AsyncClient) -> ProviderAdapter:
        return build_adapter(
            "sandbox", AdapterConfig("sandbox-cards", receiving_psp.url, http, 5.0)
        )

    @pytest.fixture
    def impatient_adapter(
        self, receiving_psp: SandboxPSPProcess, http: httpx.AsyncClient
    ) -> ProviderAdapter:
        config = AdapterConfig("sandbox-cards", receiving_psp.url, http, IMPATIENT_SECONDS)
        return build_adapter("sandbox", config)

    @pytest.fixture
    def scenarios(self) -> Scenarios:
        return SANDBOX_SCENARIOS

    @pytest.fixture
    def webhook_secret(self) -> str:
        return DEV_WEBHOOK_SECRETS["sandbox-cards"]


class TestExamplePlugin(AdapterConformance):
    @pytest.fixture
    def adapter(
        self, example_plugin: Path, receiving_psp: SandboxPSPProcess, http: httpx.AsyncClient
    ) -> ProviderAdapter:
        endpoint = f"{receiving_psp.url}/sandbox-cards"
        return build_adapter("example", AdapterConfig("example-cards", endpoint, http, 5.0))

    @pytest.fixture
    def impatient_adapter(
        self, example_plugin: Path, receiving_psp: SandboxPSPProcess, http: httpx.AsyncClient
    ) -> ProviderAdapter:
        endpoint = f"{receiving_psp.url}/sandbox-cards"
        config = AdapterConfig("example-cards", endpoint, http, IMPATIENT_SECONDS)
        return build_adapter("example", config)

    @pytest.fixture
    def scenarios(self) -> Scenarios:
        return SANDBOX_SCENARIOS

    @pytest.fixture
    def webhook_secret(self) -> str:
        return DEV_WEBHOOK_SECRETS["sandbox-cards"]
