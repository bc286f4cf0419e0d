"""Webhook signatures and event parsing: operations' events and disputes'."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from providers.base import DisputeStatus
from providers.webhooks import (
    InvalidEvent,
    ProviderDisputeEvent,
    ProviderEvent,
    WebhookSignatureInvalid,
    parse_any_event,
    parse_dispute_event,
    parse_event,
    sign,
    verify,
)

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


def dispute_body(event_type: str = "dispute.created", **dispute_changes: object) -> bytes:
    dispute = {
        "id": "dp_1",
        "provider": "sandbox-cards",
        "reference": "dep_1",
        "charge_id": "ch_1",
        "charge_idempotency_key": "dep_1:charge",
        "amount": 1000,
        "currency": "EUR",
        "fee": 150,
        "reason": "fraudulent",
        "status": "needs_response",
        "evidence_due_by": "2025-01-08T12:00:00.5Z",
        "evidence_submitted_at": None,
        **dispute_changes,
    }
    event = {"id": "evt_9", "type": event_type, "created": NOW, "sequence": 1}
    return json.dumps({**event, "data": {"dispute": dispute}}).encode()


def test_parse_dispute_event_reads_dispute() -> None:
    event = parse_dispute_event(dispute_body())
    assert (event.id, event.type, event.created, event.sequence) == (
        "evt_9",
        "dispute.created",
        NOW,
        1,
    )
    assert (event.provider, event.dispute_id, event.reference) == ("sandbox-cards", "dp_1", "dep_1")
    assert event.charge_idempotency_key == "dep_1:charge"
    assert (event.amount, event.currency, event.fee, event.reason) == (
        1000,
        "EUR",
        150,
        "fraudulent",
    )
    assert event.status == DisputeStatus.needs_response
    assert event.evidence_due_at == datetime(2025, 1, 8, 12, 0, 0, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event_type", "status"), [("dispute.won", "won"), ("dispute.lost", "lost")]
)
def test_parse_any_event_routes_by_kind(event_type: str, status: str) -> None:
    dispute = parse_any_event(dispute_body(event_type, status=status))
    assert isinstance(dispute, ProviderDisputeEvent) and dispute.status == status
    operation = parse_any_event(event_body())
    assert isinstance(operation, ProviderEvent) and operation.operation_id == "ch_1"


def test_parse_event_refuses_dispute_event() -> None:
    with pytest.raises(InvalidEvent):
        parse_event(dispute_body())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        dispute_body("dispute.updated"),
        dispute_body("charge.succeeded"),
        dispute_body(status="exploded"),
        dispute_body(amount="1000"),
        dispute_body(fee=-1),
        dispute_body(fee=True),
        dispute_body(evidence_due_by="next week"),
        dispute_body(evidence_due_by="2025-01-08T12:00:00"),
        dispute_body(charge_idempotency_key=None),
        json.dumps({"id": "evt_1", "type": "dispute.won", "data": {"dispute": []}}).encode(),
    ],
)
def test_parse_dispute_event_rejects_malformed_event(body: bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_dispute_event(body)
    with pytest.raises(InvalidEvent):
        parse_any_event(body)
