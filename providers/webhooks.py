"""Webhook signatures (HMAC-SHA256 over `timestamp.body`) and event parsing: PSP and API.

Two kinds of events come to the same URL: an operation's (`charge.*`, `payout.*`, `refund.*`,
`data.operation`: `parse_event` -> `ProviderEvent`) and a dispute's (`dispute.created|won|lost`,
`data.dispute`: `parse_dispute_event` -> `ProviderDisputeEvent`). `parse_any_event` tells them
apart. Both carry a unique event `id` (dedupe by provider and id) and a per-object `sequence`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from providers.base import DisputeStatus, InvalidEvent, Outcome, WebhookSignatureInvalid

__all__ = [
    "DISPUTE_EVENT_TYPES",
    "SIGNATURE_HEADER",
    "InvalidEvent",
    "ProviderDisputeEvent",
    "ProviderEvent",
    "WebhookSignatureInvalid",
    "parse_any_event",
    "parse_dispute_event",
    "parse_event",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "Sandbox-Signature"
DISPUTE_EVENT_TYPES = ("dispute.created", "dispute.won", "dispute.lost")


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int, *previous_secrets: str) -> str:
    """The `Sandbox-Signature` header value for `body` sent at `timestamp` (unix seconds): one
    `v1` per secret, the current one first, so that a receiver verifies with either during a
    rotation (as Stripe does)."""
    signatures = ",".join(f"v1={_mac(s, body, timestamp)}" for s in (secret, *previous_secrets))
    return f"t={timestamp},{signatures}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int) -> None:
    """Check a signature header against the raw body; raise `WebhookSignatureInvalid` if wrong."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookSignatureInvalid("malformed signature header")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise WebhookSignatureInvalid("malformed signature timestamp") from exc
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureInvalid("signature header lacks t or v1")
    if abs(now - timestamp) > tolerance_seconds:
        raise WebhookSignatureInvalid("signature timestamp outside the tolerance")
    expected = _mac(secret, body, timestamp).encode()
    # Bytes, not text: compare_digest refuses non-ASCII str (a forged header must be a 401, not
    # a crash). Every candidate is compared so that timing does not reveal which one matched.
    matched = [
        hmac.compare_digest(expected, candidate.encode("utf-8", "backslashreplace"))
        for candidate in candidates
    ]
    if not any(matched):
        raise WebhookSignatureInvalid("signature does not match")


@dataclass(frozen=True)
class ProviderEvent:
    """A provider's webhook event, flattened: the event envelope and the operation it announces."""

    id: str
    type: str
    created: int
    sequence: int
    provider: str
    kind: str
    operation_id: str
    idempotency_key: str
    reference: str
    status: str
    amount: int
    currency: str
    decline_code: str | None

    @property
    def outcome(self) -> Outcome:
        """The operation's outcome as the sagas understand it."""
        return Outcome(self.status)


def _field(mapping: dict[str, Any], name: str, kind: type) -> Any:
    value = mapping.get(name)
    # bool is an int subclass; an amount of `true` is not an amount.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidEvent(f"event field {name!r} is missing or not a {kind.__name__}")
    return value


def parse_event(body: bytes) -> ProviderEvent:
    """Parse an operation's webhook body; raise `InvalidEvent` if it is not a well-formed one."""
    payload = _envelope(body)
    data = _field(payload, "data", dict)
    operation = _field(data, "operation", dict)
    decline_code = operation.get("decline_code")
    if decline_code is not None and not isinstance(decline_code, str):
        raise InvalidEvent("event field 'decline_code' is not a string")
    status = _field(operation, "status", str)
    if status not in (Outcome.succeeded, Outcome.declined, Outcome.pending):
        raise InvalidEvent(f"event operation status {status!r} is not known")
    return ProviderEvent(
        id=_field(payload, "id", str),
        type=_field(payload, "type", str),
        created=_field(payload, "created", int),
        sequence=_field(payload, "sequence", int),
        provider=_field(operation, "provider", str),
        kind=_field(operation, "kind", str),
        operation_id=_field(operation, "id", str),
        idempotency_key=_field(operation, "idempotency_key", str),
        reference=_field(operation, "reference", str),
        status=status,
        amount=_field(operation, "amount", int),
        currency=_field(operation, "currency", str),
        decline_code=decline_code,
    )


@dataclass(frozen=True)
class ProviderDisputeEvent:
    """A provider's dispute event, flattened: the envelope and the dispute as it was then.

    `reference` is the disputed payment's id; `status` is the dispute's at the event's time
    (`needs_response` for `dispute.created`, `won` or `lost` for the verdicts). A verdict has a
    higher `sequence` than the `dispute.created` of the same dispute, whatever the arrival order.
    """

    id: str
    type: str  # one of DISPUTE_EVENT_TYPES
    created: int
    sequence: int
    provider: str
    dispute_id: str
    reference: str
    charge_idempotency_key: str
    amount: int
    currency: str
    fee: int
    reason: str
    status: DisputeStatus
    evidence_due_by: str  # ISO 8601, UTC

    @property
    def evidence_due_at(self) -> datetime:
        """`evidence_due_by` as an aware datetime."""
        return datetime.fromisoformat(self.evidence_due_by)


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise InvalidEvent("event body is not JSON") from exc
    except RecursionError as exc:  # how Python's parser refuses a document nested too deep
        raise InvalidEvent("event body is nested too deep") from exc
    if not isinstance(payload, dict):
        raise InvalidEvent("event body is not a JSON object")
    return payload


def parse_dispute_event(body: bytes) -> ProviderDisputeEvent:
    """Parse a dispute webhook body; raise `InvalidEvent` if it is not a well-formed one."""
    payload = _envelope(body)
    event_type = _field(payload, "type", str)
    if event_type not in DISPUTE_EVENT_TYPES:
        raise InvalidEvent(f"event type {event_type!r} is not a dispute event")
    dispute = _field(_field(payload, "data", dict), "dispute", dict)
    try:
        status = DisputeStatus(_field(dispute, "status", str))
    except ValueError as exc:
        raise InvalidEvent("event dispute status is not known") from exc
    evidence_due_by = _field(dispute, "evidence_due_by", str)
    try:
        if datetime.fromisoformat(evidence_due_by).tzinfo is None:
            raise InvalidEvent("event field 'evidence_due_by' has no offset")
    except ValueError as exc:
        raise InvalidEvent("event field 'evidence_due_by' is not an ISO 8601 time") from exc
    for amount in ("amount", "fee"):
        if _field(dispute, amount, int) < 0:
            raise InvalidEvent(f"event field {amount!r} is negative")
    return ProviderDisputeEvent(
        id=_field(payload, "id", str),
        type=event_type,
        created=_field(payload, "created", int),
        sequence=_field(payload, "sequence", int),
        provider=_field(dispute, "provider", str),
        dispute_id=_field(dispute, "id", str),
        reference=_field(dispute, "reference", str),
        charge_idempotency_key=_field(dispute, "charge_idempotency_key", str),
        amount=dispute["amount"],
        currency=_field(dispute, "currency", str),
        fee=dispute["fee"],
        reason=_field(dispute, "reason", str),
        status=status,
        evidence_due_by=evidence_due_by,
    )


def parse_any_event(body: bytes) -> ProviderEvent | ProviderDisputeEvent:
    """Parse any webhook body: a dispute event if its `data` holds a dispute, else an operation's."""
    data = _envelope(body).get("data")
    if isinstance(data, dict) and "dispute" in data:
        return parse_dispute_event(body)
    return parse_event(body)
