"""The adapter conformance suite: pytest tests that check an adapter keeps the interface's promises.

An adapter's author subclasses `AdapterConformance` in a test module (its name must start with
`Test`) and gives it five fixtures; pytest then runs every check against the PSP's test endpoint:

    from providers.conformance import AdapterConformance, Scenarios

    class TestMyPSP(AdapterConformance):
        @pytest.fixture
        def adapter(self, http): ...            # a ProviderAdapter on the test endpoint
        @pytest.fixture
        def impatient_adapter(self, http): ...  # the same, timing out before `times_out` answers
        @pytest.fixture
        def scenarios(self): return Scenarios(succeeds="pm_ok", declines=..., ...)
        @pytest.fixture
        def webhook_secret(self): return "whsec_..."
        @pytest.fixture
        def received_webhook(self): ...         # async (reference) -> (headers, raw body)

Only what the adapter's `Capabilities` declare is checked (refunds, payouts, authentication,
currencies). The tests are async: run them with pytest-asyncio (`asyncio_mode = "auto"`, or a
module-level `pytestmark = pytest.mark.asyncio`). See docs/providers.md.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import pytest

from domain.money import CURRENCY_EXPONENTS
from providers.adapter import (
    Answer,
    CapabilityAbsent,
    Outcome,
    ProviderAdapter,
    ProviderEvent,
    ProviderResult,
    WebhookSignatureInvalid,
    classify,
)

ReceivedWebhook = Callable[[str], Awaitable[tuple[Mapping[str, str], bytes]]]
SETTLE_ATTEMPTS = 400  # polls of `status` (50 ms apart) before an outcome counts as stuck
TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class Scenarios:
    """Payment methods (tokens, test cards) that make the test endpoint answer each way."""

    succeeds: str  # the charge succeeds (its webhook follows)
    declines: str  # the charge is declined
    times_out: str  # the charge is made, but its answer comes after the adapter's time-out
    unavailable: str  # the first call is refused without being processed (503, 429)
    payout_destination: str | None = None  # a payout that succeeds, if payouts are declared
    # A charge that waits for its customer's authentication, if authentication is declared.
    authenticates: str | None = None


def new_key(step: str = "charge") -> tuple[str, str]:
    """A fresh (idempotency key, reference) pair, shaped as paysaga's: `<payment id>:<step>`."""
    reference = f"dep_conf{uuid.uuid4().hex[:16]}"
    return f"{reference}:{step}", reference


async def settled(adapter: ProviderAdapter, idempotency_key: str) -> ProviderResult:
    """Read `status` until the outcome is final (succeeded or declined)."""
    for _ in range(SETTLE_ATTEMPTS):
        result = await adapter.status(idempotency_key)
        if result.outcome in (Outcome.succeeded, Outcome.declined):
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"{idempotency_key} never settled: status is still {result.outcome}")


def three_decimal_currency(adapter: ProviderAdapter) -> str:
    """A currency of exponent 3 the adapter declares (skips the test if none)."""
    declared = sorted(c for c in adapter.capabilities.currencies if CURRENCY_EXPONENTS[c] == 3)
    if not declared:
        pytest.skip("the adapter declares no 3-decimal currency")
    return declared[0]


class AdapterConformance:
    """The checks; a `Test...` subclass provides the fixtures named in the module docstring."""

    async def charge(
        self, adapter: ProviderAdapter, method: str, key: str, reference: str, **money: object
    ) -> ProviderResult:
        amount = money.get("amount", 1500)
        currency = money.get("currency", "EUR")
        assert isinstance(amount, int) and isinstance(currency, str)
        return await adapter.charge(
            idempotency_key=key,
            reference=reference,
            amount=amount,
            currency=currency,
            payment_method=method,
        )

    async def test_capabilities_declared(self, adapter: ProviderAdapter) -> None:
        capabilities = adapter.capabilities
        assert capabilities.methods, "an adapter serves at least one payment method"
        assert capabilities.currencies <= CURRENCY_EXPONENTS.keys()
        assert "EUR" in capabilities.currencies or "JPY" in capabilities.currencies

    async def test_same_key_twice_one_charge(
        self, adapter: ProviderAdapter, scenarios: Scenarios
    ) -> None:
        key, reference = new_key()
        first = await self.charge(adapter, scenarios.succeeds, key, reference)
        again = await self.charge(adapter, scenarios.succeeds, key, reference)
        assert classify(first) in (Answer.succeeded, Answer.pending)
        assert again.operation_id == first.operation_id
        assert (await settled(adapter, key)).outcome == Outcome.succeeded
        lines = [line for line in await adapter.settlement_report() if line.reference == reference]
        assert [line.kind for line in lines] == ["charge"], "one key, one charge"

    async def test_decline_is_an_answer(
        self, adapter: ProviderAdapter, scenarios: Scenarios
    ) -> None:
        key, reference = new_key()
        result = await self.charge(adapter, scenarios.declines, key, reference)
        assert classify(result) in (Answer.declined, Answer.pending)
        final = await settled(adapter, key)
        assert classify(final) == Answer.declined
        assert not classify(final).is_health_failure and not classify(final).failover_safe

    async def test_timeout_unknown_then_resolved_by_status(
        self, impatient_adapter: ProviderAdapter, adapter: ProviderAdapter, scenarios: Scenarios
    ) -> None:
        key, reference = new_key()
        result = await self.charge(impatient_adapter, scenarios.times_out, key, reference)
        # The request was sent: it may have landed, so no failover (`unavailable` would allow it).
        assert classify(result) == Answer.unknown
        assert not classify(result).failover_safe
        assert (await settled(adapter, key)).outcome == Outcome.succeeded

    async def test_refusal_unavailable_and_unrecorded(
        self, adapter: ProviderAdapter, scenarios: Scenarios
    ) -> None:
        key, reference = new_key()
        result = await self.charge(adapter, scenarios.unavailable, key, reference)
        assert classify(result) == Answer.unavailable
        assert result.outcome == Outcome.not_processed
        # Failover is safe only if the provider has no record of the key.
        assert (await adapter.status(key)).outcome == Outcome.not_processed

    async def test_status_of_unseen_key_not_processed(self, adapter: ProviderAdapter) -> None:
        key, _ = new_key()
        assert (await adapter.status(key)).outcome == Outcome.not_processed

    async def test_webhook_verified_over_raw_body(
        self,
        adapter: ProviderAdapter,
        scenarios: Scenarios,
        webhook_secret: str,
        received_webhook: ReceivedWebhook,
    ) -> None:
        key, reference = new_key()
        await self.charge(adapter, scenarios.succeeds, key, reference, amount=2500)
        headers, body = await received_webhook(reference)
        now = int(time.time())
        adapter.verify_webhook(
            headers, body, secret=webhook_secret, now=now, tolerance_seconds=TOLERANCE_SECONDS
        )
        event = adapter.parse_webhook(body)
        assert isinstance(event, ProviderEvent)
        assert (event.idempotency_key, event.reference, event.amount) == (key, reference, 2500)

        reserialized = json.dumps(json.loads(body), indent=1, sort_keys=True).encode()
        assert reserialized != body
        with pytest.raises(WebhookSignatureInvalid):
            adapter.verify_webhook(
                headers,
                reserialized,
                secret=webhook_secret,
                now=now,
                tolerance_seconds=TOLERANCE_SECONDS,
            )
        with pytest.raises(WebhookSignatureInvalid):
            adapter.verify_webhook(
                headers, body, secret="whsec_wrong", now=now, tolerance_seconds=TOLERANCE_SECONDS
            )

    @pytest.mark.parametrize("currency", ["JPY", "EUR", "3-decimal"])
    async def test_amount_in_minor_units(
        self,
        adapter: ProviderAdapter,
        scenarios: Scenarios,
        received_webhook: ReceivedWebhook,
        currency: str,
    ) -> None:
        if currency == "3-decimal":
            currency = three_decimal_currency(adapter)
        if currency not in adapter.capabilities.currencies:
            pytest.skip(f"the adapter does not declare {currency}")
        # 12,345 minor units: ¥12,345, €123.45; a unit slip shows as a factor of 10. In a
        # 3-decimal currency 12,340 (12.340 dinars): PSPs such as Stripe take only multiples of
        # 10 there, and a slip still shows (1,234 or 123,400).
        amount = 12340 if CURRENCY_EXPONENTS[currency] == 3 else 12345
        key, reference = new_key()
        await self.charge(
            adapter, scenarios.succeeds, key, reference, amount=amount, currency=currency
        )
        assert (await settled(adapter, key)).outcome == Outcome.succeeded
        _, body = await received_webhook(reference)
        event = adapter.parse_webhook(body)
        assert isinstance(event, ProviderEvent)
        assert (event.amount, event.currency) == (amount, currency)
        lines = [line for line in await adapter.settlement_report() if line.reference == reference]
        assert [(line.amount, line.currency) for line in lines] == [(amount, currency)]

    async def test_refund_same_key_twice_one_refund(
        self, adapter: ProviderAdapter, scenarios: Scenarios
    ) -> None:
        if not adapter.capabilities.refunds:
            pytest.skip("the adapter declares no refunds")
        charge_key, reference = new_key()
        await self.charge(adapter, scenarios.succeeds, charge_key, reference)
        await settled(adapter, charge_key)
        refund_key = f"{reference}:refund"
        answers = [
            await adapter.refund(
                idempotency_key=refund_key,
                reference=reference,
                charge_idempotency_key=charge_key,
                amount=500,
                currency="EUR",
            )
            for _ in range(2)
        ]
        assert answers[0].operation_id == answers[1].operation_id
        assert (await settled(adapter, refund_key)).outcome == Outcome.succeeded

    async def test_payout_same_key_twice_one_payout(
        self, adapter: ProviderAdapter, scenarios: Scenarios
    ) -> None:
        if not adapter.capabilities.payouts or scenarios.payout_destination is None:
            pytest.skip("the adapter declares no payouts")
        key, reference = new_key("payout")
        answers = [
            await adapter.payout(
                idempotency_key=key,
                reference=reference,
                amount=700,
                currency="EUR",
                destination=scenarios.payout_destination,
            )
            for _ in range(2)
        ]
        assert answers[0].operation_id == answers[1].operation_id
        assert (await settled(adapter, key)).outcome == Outcome.succeeded

    async def test_payout_absent_as_declared(self, adapter: ProviderAdapter) -> None:
        if adapter.capabilities.payouts:
            pytest.skip("the adapter declares payouts: test_payout_same_key_twice_one_payout")
        key, reference = new_key("payout")
        # Nothing is sent: a saga may then choose another provider without paying twice.
        with pytest.raises(CapabilityAbsent):
            await adapter.payout(
                idempotency_key=key,
                reference=reference,
                amount=700,
                currency="EUR",
                destination="pm_ok",
            )

    async def test_authentication_as_declared(self, adapter: ProviderAdapter) -> None:
        if adapter.capabilities.authentication:
            pytest.skip("declared: test_charge_waiting_for_customer_redirects_and_cancels")
        key, _ = new_key()
        with pytest.raises(CapabilityAbsent):
            await adapter.authenticate(idempotency_key=key, return_url="https://example.test/r")
        with pytest.raises(CapabilityAbsent):
            await adapter.cancel_authorization(key)

    async def test_charge_waiting_for_customer_redirects_and_cancels(
        self, adapter: ProviderAdapter, scenarios: Scenarios
    ) -> None:
        if not adapter.capabilities.authentication:
            pytest.skip("the adapter declares no customer authentication")
        assert scenarios.authenticates, "Scenarios.authenticates: a charge needing the customer"
        key, reference = new_key()
        answer = await adapter.charge(
            idempotency_key=key,
            reference=reference,
            amount=1500,
            currency="EUR",
            payment_method=scenarios.authenticates,
        )
        # The saga waits for the customer only on this flag; the money has not moved yet.
        assert (answer.outcome, answer.requires_action) == (Outcome.pending, True)
        asked = await adapter.authenticate(
            idempotency_key=key, return_url="https://example.test/back"
        )
        assert (asked.status, asked.idempotency_key) == ("required", key)
        assert asked.url and asked.url.startswith(("https://", "http://"))
        # Abandoned: cancelled at the provider, declined for good; cancelling again is harmless.
        assert (await adapter.cancel_authorization(key)).outcome == Outcome.declined
        assert (await adapter.cancel_authorization(key)).outcome == Outcome.declined
        assert (await settled(adapter, key)).outcome == Outcome.declined
