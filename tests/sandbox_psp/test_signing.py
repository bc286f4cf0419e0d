"""The sandbox PSP's webhook signatures, checked by the service's own verifier."""

from __future__ import annotations

import json

import pytest

from paysaga.settings import DEV_PSP_WEBHOOK_SECRETS, Settings
from providers.webhooks import WebhookSignatureInvalid, verify
from sandbox_psp.settings import DEV_WEBHOOK_SECRETS, SandboxSettings
from sandbox_psp.signing import SIGNATURE_HEADER, signature_header

SECRET = "whsec_test"
NOW = 1_760_000_000
BODY = json.dumps({"id": "evt_1", "data": {"operation": {"amount": 1_000}}}).encode()


def test_verify_accepts_a_webhook_signed_by_the_sandbox() -> None:
    header = signature_header(SECRET, BODY, NOW)

    verify(SECRET, header, BODY, now=NOW + 5, tolerance_seconds=300)


def test_verify_refuses_a_tampered_body() -> None:
    header = signature_header(SECRET, BODY, NOW)
    tampered = BODY.replace(b"1000", b"9000")

    with pytest.raises(WebhookSignatureInvalid):
        verify(SECRET, header, tampered, now=NOW, tolerance_seconds=300)


def test_verify_refuses_another_secret_and_a_stale_timestamp() -> None:
    header = signature_header(SECRET, BODY, NOW)

    with pytest.raises(WebhookSignatureInvalid):
        verify("whsec_other", header, BODY, now=NOW, tolerance_seconds=300)
    with pytest.raises(WebhookSignatureInvalid):
        verify(SECRET, header, BODY, now=NOW + 301, tolerance_seconds=300)


def test_sandbox_secrets_and_header_default_to_the_service_ones() -> None:
    assert DEV_WEBHOOK_SECRETS == DEV_PSP_WEBHOOK_SECRETS
    assert SIGNATURE_HEADER == "Sandbox-Signature"


def test_sandbox_settings_read_the_service_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSAGA_PSP_PORT", "8123")
    monkeypatch.setenv("PAYSAGA_API_PORT", "8042")
    monkeypatch.setenv("PAYSAGA_PSP_WEBHOOK_SECRETS", '{"sandbox-cards": "whsec_x"}')
    monkeypatch.setenv("PAYSAGA_PSP_STALL_SECONDS", "3")

    sandbox, service = SandboxSettings(), Settings()

    assert sandbox.psp_port == service.psp_port == 8123
    assert sandbox.psp_webhook_url == service.psp_webhook_url
    assert sandbox.psp_webhook_url == "http://127.0.0.1:8042/v1/webhooks/providers"
    assert (
        sandbox.psp_webhook_secrets == service.psp_webhook_secrets == {"sandbox-cards": "whsec_x"}
    )
    assert sandbox.psp_stall_seconds == service.psp_stall_seconds == 3.0
