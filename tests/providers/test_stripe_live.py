"""The Stripe adapter against Stripe's own test mode: opt-in, with `STRIPE_TEST_SECRET_KEY`.

Skipped without the variable (and refused with a live key). Uses only Stripe's published test
payment methods; webhooks and disputes are left to the local server's tests (a webhook needs a
public endpoint, a dispute days). Run it: `STRIPE_TEST_SECRET_KEY=sk_test_... .venv/bin/pytest
tests/providers/test_stripe_live.py`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from providers.adapter import AdapterConfig, Outcome, ProviderRequestRejected
from providers.conformance import settled
from providers.registry import build_adapter
from providers.stripe_psp import StripeAdapter

SECRET_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
STRIPE_API = "https://api.stripe.com"

pytestmark = pytest.mark.skipif(not SECRET_KEY, reason="STRIPE_TEST_SECRET_KEY is not set")


@pytest.fixture
async def adapter() -> AsyncIterator[StripeAdapter]:
    assert SECRET_KEY.startswith("sk_test_"), "the live test runs on a test-mode key only"
    async with httpx.AsyncClient() as http:
        config = AdapterConfig(
            "stripe-live-test", STRIPE_API, http, 30.0, {"secret_key": SECRET_KEY}
        )
        built = build_adapter("stripe", config)
        assert isinstance(built, StripeAdapter)
        yield built


def new_payment() -> tuple[str, str]:
    reference = f"dep_live{uuid.uuid4().hex[:16]}"
    return f"{reference}:charge", reference


async def test_live_charge_once_per_key_then_refund(adapter: StripeAdapter) -> None:
    key, reference = new_payment()
    answers = [
        await adapter.charge(
            idempotency_key=key,
            reference=reference,
            amount=1500,
            currency="EUR",
            payment_method="pm_card_visa",
        )
        for _ in range(2)
    ]
    assert answers[0].outcome == Outcome.succeeded
    assert answers[0].operation_id == answers[1].operation_id
    assert (await settled(adapter, key)).operation_id == answers[0].operation_id
    refund = await adapter.refund(
        idempotency_key=f"{reference}:refund",
        reference=reference,
        charge_idempotency_key=key,
        amount=500,
        currency="EUR",
    )
    assert refund.outcome in (Outcome.succeeded, Outcome.pending)
    assert (await settled(adapter, f"{reference}:refund")).outcome == Outcome.succeeded


async def test_live_decline_and_rejection(adapter: StripeAdapter) -> None:
    key, reference = new_payment()
    declined = await adapter.charge(
        idempotency_key=key,
        reference=reference,
        amount=1500,
        currency="EUR",
        payment_method="pm_card_chargeDeclined",
    )
    assert declined.outcome == Outcome.declined
    assert (await adapter.status(key)).outcome == Outcome.declined
    key, reference = new_payment()
    with pytest.raises(ProviderRequestRejected):
        await adapter.charge(
            idempotency_key=key,
            reference=reference,
            amount=1500,
            currency="EUR",
            payment_method="pm_no_such_method",
        )
    assert (await adapter.status(key)).outcome == Outcome.not_processed


async def test_live_three_d_secure_redirect(adapter: StripeAdapter) -> None:
    key, reference = new_payment()
    result = await adapter.charge(
        idempotency_key=key,
        reference=reference,
        amount=1500,
        currency="EUR",
        payment_method="pm_card_threeDSecure2Required",
    )
    assert result.outcome == Outcome.pending
    asked = await adapter.authenticate(idempotency_key=key, return_url="https://example.com/back")
    assert asked.status == "required" and asked.url is not None
    assert asked.url.startswith("https://")


async def test_live_unseen_key_not_processed(adapter: StripeAdapter) -> None:
    key, _ = new_payment()
    assert (await adapter.status(key)).outcome == Outcome.not_processed
