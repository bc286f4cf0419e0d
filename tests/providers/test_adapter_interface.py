"""The adapter interface: answer classification, capabilities, the sandbox adapter's declarations."""

from __future__ import annotations

import time

import httpx
import pytest

from providers.adapter import (
    AdapterConfig,
    Answer,
    Capabilities,
    CapabilityAbsent,
    Outcome,
    ProviderConfigurationError,
    ProviderRequestRejected,
    ProviderResult,
    ProviderUnavailable,
    WebhookSignatureInvalid,
    classify,
)
from providers.sandbox import SandboxProvider, sandbox_adapter
from providers.webhooks import sign


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        (Outcome.succeeded, Answer.succeeded),
        (Outcome.pending, Answer.pending),
        (Outcome.declined, Answer.declined),
        (Outcome.rejected, Answer.rejected),
        (Outcome.not_processed, Answer.unavailable),
        (Outcome.unknown, Answer.unknown),
    ],
)
def test_outcome_classified(outcome: Outcome, answer: Answer) -> None:
    assert classify(ProviderResult("psp", outcome)) == answer


def test_only_unavailable_allows_failover() -> None:
    assert [a for a in Answer if a.failover_safe] == [Answer.unavailable]
    assert {a for a in Answer if a.may_have_landed} == {
        Answer.succeeded,
        Answer.pending,
        Answer.unknown,
    }


def test_declines_and_rejections_never_count_against_health() -> None:
    assert {a for a in Answer if a.is_health_failure} == {Answer.unavailable, Answer.unknown}


def test_errors_classified() -> None:
    assert classify(ProviderRequestRejected("psp", 422, "invalid")) == Answer.rejected
    assert classify(CapabilityAbsent("no payouts")) == Answer.rejected
    # A dispute call's network trouble may have landed: read the state back first.
    assert classify(ProviderUnavailable("reset")) == Answer.unknown
    assert classify(RuntimeError("anything else")) == Answer.unknown


def test_capabilities_refuse_a_currency_paysaga_does_not_know() -> None:
    with pytest.raises(ProviderConfigurationError):
        Capabilities(methods=frozenset({"card"}), currencies=frozenset({"XYZ"}))
    capabilities = Capabilities(methods=frozenset({"card"}), currencies=frozenset({"EUR"}))
    assert capabilities.serves("card", "EUR") and not capabilities.serves("card", "JPY")


async def test_sandbox_adapter_declares_authentication() -> None:
    async with httpx.AsyncClient() as http:
        adapter = sandbox_adapter(AdapterConfig("sandbox-bank", "http://psp.invalid", http, 1.0))
        assert isinstance(adapter, SandboxProvider) and adapter.name == "sandbox-bank"
        capabilities = adapter.capabilities
        assert capabilities.payouts and capabilities.refunds and capabilities.disputes
        assert capabilities.authentication
        assert {"JPY", "EUR", "KWD"} <= capabilities.currencies
        # Unreachable: the authentication is retried (unavailable), the cancel's outcome unknown.
        with pytest.raises(ProviderUnavailable):
            await adapter.authenticate(idempotency_key="dep_1:charge", return_url="https://r")
        assert (await adapter.cancel_authorization("dep_1:charge")).outcome == Outcome.unknown


async def test_sandbox_adapter_verifies_webhook_headers_in_any_case() -> None:
    body = b'{"id": "evt_1"}'
    now = int(time.time())
    async with httpx.AsyncClient() as http:
        adapter = sandbox_adapter(AdapterConfig("sandbox-cards", "http://psp.invalid", http, 1.0))
        header = sign("whsec_x", body, now)
        adapter.verify_webhook(
            {"sandbox-signature": header}, body, secret="whsec_x", now=now, tolerance_seconds=300
        )
        with pytest.raises(WebhookSignatureInvalid):
            adapter.verify_webhook({}, body, secret="whsec_x", now=now, tolerance_seconds=300)
