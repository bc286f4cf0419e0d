"""Webhook signatures (HMAC-SHA256 over `timestamp.body`) and event parsing: PSP and API."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from providers.base import InvalidEvent, Outcome, WebhookSignatureInvalid

__all__ = [
    "SIGNATURE_HEADER",
    "InvalidEvent",
    "ProviderEvent",
    "WebhookSignatureInvalid",
    "parse_event",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "Sandbox-Signature"


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Sandbox-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, body, timestamp)}"


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
    """Parse a webhook body; raise `InvalidEvent` if it is not a well-formed event."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise InvalidEvent("event body is not JSON") from exc
    if not isinstance(payload, dict):
        raise InvalidEvent("event body is not a JSON object")
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
