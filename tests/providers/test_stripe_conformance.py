"""The conformance suite (providers.conformance) run on the Stripe adapter, against the local
Stripe server (tests/providers/stripe_server) through the official SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest

from providers.adapter import AdapterConfig, ProviderAdapter
from providers.conformance import AdapterConformance, ReceivedWebhook, Scenarios
from providers.registry import build_adapter
from tests.providers.stripe_fixtures import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    StripeServerProcess,
    StripeWebhooks,
)

# Stripe's own test payment methods, and the local server's for what Stripe cannot be made to do.
STRIPE_SCENARIOS = Scenarios(
    succeeds="pm_card_visa",
    declines="pm_card_chargeDeclined",
    times_out="pm_local_slow",
    unavailable="pm_local_rate_limited",
    authenticates="pm_card_threeDSecure2Required",
)
IMPATIENT_SECONDS = 0.5


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def stripe_account(server: StripeServerProcess, http: httpx.AsyncClient, timeout: float):
    config = AdapterConfig("stripe-test", server.url, http, timeout, {"secret_key": SECRET_KEY})
    return build_adapter("stripe", config)


class TestStripeAdapter(AdapterConformance):
    @pytest.fixture
    def adapter(
        self, stripe_server: StripeServerProcess, http: httpx.AsyncClient
    ) -> ProviderAdapter:
        return stripe_account(stripe_server, http, 5.0)

    @pytest.fixture
    def impatient_adapter(
        self, stripe_server: StripeServerProcess, http: httpx.AsyncClient
    ) -> ProviderAdapter:
        return stripe_account(stripe_server, http, IMPATIENT_SECONDS)

    @pytest.fixture
    def scenarios(self) -> Scenarios:
        return STRIPE_SCENARIOS

    @pytest.fixture
    def webhook_secret(self) -> str:
        return WEBHOOK_SECRET

    @pytest.fixture
    def received_webhook(self, stripe_webhooks: StripeWebhooks) -> ReceivedWebhook:
        async def succeeded_event(reference: str) -> tuple[Mapping[str, str], bytes]:
            delivery = await asyncio.to_thread(
                stripe_webhooks.wait_for, reference, "payment_intent.succeeded"
            )
            return delivery.headers, delivery.body

        return succeeded_event
