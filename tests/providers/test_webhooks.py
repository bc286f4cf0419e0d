"""Webhook signatures and event parsing."""

from __future__ import annotations

import json

import pytest

from providers.webhooks import InvalidEvent, WebhookSignatureInvalid, parse_event, sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"evt_1"}'
NOW = 1_700_000_000


def test_verify_accepts_good_signature() -> None:
    header = sign(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    verify(SECRET, header, BODY, now=NOW + 299, tolerance_seconds=300)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        (SECRET, b'{"id":"evt_2"}', NOW),  # tampered body
        ("whsec_other", BODY, NOW),  # wrong secret
        (SECRET, BODY, NOW + 301),  # stale beyond the tolerance
        (SECRET, BODY, NOW - 301),  # from the future beyond the tolerance
    ],
)
def test_verify_rejects_bad_signature(secret: str, body: bytes, now: int) -> None:
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(WebhookSignatureInvalid):
        verify(secret, header, body, now=now, tolerance_seconds=300)


@pytest.mark.parametrize(
    "header",
    ["", "garbage", f"t={NOW}", "v1=abc", f"t=soon,v1={'0' * 64}", f"t={NOW},v1"],
)
def test_verify_rejects_malformed_header(header: str) -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify(SECRET, header, BODY, now=NOW, tolerance_seconds=300)


def test_verify_accepts_any_matching_v1() -> None:
    good = sign(SECRET, BODY, NOW).split(",")[1]
    header = f"t={NOW},v1={'0' * 64},{good}"
    verify(SECRET, header, BODY, now=NOW, tolerance_seconds=300)


def event_body(**operation_changes: object) -> bytes:
    operation = {
        "id": "ch_1",
        "kind": "charge",
        "provider": "sandbox-cards",
        "idempotency_key": "dep_1:charge",
        "reference": "dep_1",
        "amount": 1000,
        "currency": "EUR",
        "method": "pm_ok",
        "status": "succeeded",
        "decline_code": None,
        **operation_changes,
    }
    event = {"id": "evt_1", "type": "charge.succeeded", "created": NOW, "sequence": 2}
    return json.dumps({**event, "data": {"operation": operation}}).encode()


def test_parse_event_reads_operation() -> None:
    event = parse_event(event_body())
    assert (event.id, event.type, event.created, event.sequence) == (
        "evt_1",
        "charge.succeeded",
        NOW,
        2,
    )
    assert (event.provider, event.kind, event.operation_id) == ("sandbox-cards", "charge", "ch_1")
    assert (event.idempotency_key, event.reference) == ("dep_1:charge", "dep_1")
    assert (event.amount, event.currency, event.decline_code) == (1000, "EUR", None)
    assert event.outcome == "succeeded"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        event_body(amount="1000"),
        event_body(amount=True),
        event_body(status="exploded"),
        event_body(decline_code=5),
        json.dumps({"id": "evt_1"}).encode(),
    ],
)
def test_parse_event_rejects_malformed_event(body: bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(body)
