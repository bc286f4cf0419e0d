"""Stripe's objects read as paysaga's: PaymentIntents and refunds as results, events, disputes.

What the Stripe adapter (`providers/stripe_psp.py`) makes of what Stripe answers, with no network:
its module docstring says which statuses and events mean what.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from providers.base import (
    AUTHENTICATION_FAILED,
    DisputeState,
    DisputeStatus,
    InvalidEvent,
    Outcome,
    ProviderConfigurationError,
    ProviderRequestRejected,
    ProviderResult,
    ProviderUnavailable,
    SettlementLine,
)
from providers.webhooks import ProviderDisputeEvent, ProviderEvent

KEY_METADATA = "paysaga_idempotency_key"
REFERENCE_METADATA = "paysaga_reference"
CHARGE_KEY_METADATA = "paysaga_charge_idempotency_key"
INTENT_PENDING = {"processing", "requires_action", "requires_confirmation", "requires_capture"}
_REFUND_OUTCOMES = {
    "succeeded": Outcome.succeeded,
    "pending": Outcome.pending,
    "requires_action": Outcome.pending,
    "failed": Outcome.declined,
    "canceled": Outcome.declined,
}
_DISPUTE_STATUSES = {
    "warning_needs_response": DisputeStatus.needs_response,
    "needs_response": DisputeStatus.needs_response,
    "warning_under_review": DisputeStatus.under_review,
    "under_review": DisputeStatus.under_review,
    "won": DisputeStatus.won,
    "warning_closed": DisputeStatus.won,  # an inquiry closed without a chargeback
    "prevented": DisputeStatus.won,
    "lost": DisputeStatus.lost,
    "charge_refunded": DisputeStatus.lost,
}
# A per-object order for events, from how far the object has come (Stripe gives none).
_PROGRESS = {Outcome.pending: 1, Outcome.succeeded: 2, Outcome.declined: 2}
_DISPUTE_PROGRESS = {
    DisputeStatus.needs_response: 1,
    DisputeStatus.under_review: 2,
    DisputeStatus.won: 3,
    DisputeStatus.lost: 3,
}


def provider_result(
    provider: str,
    outcome: Outcome,
    *,
    operation_id: str | None = None,
    decline_code: str | None = None,
    detail: str | None = None,
) -> ProviderResult:
    return ProviderResult(provider, outcome, operation_id, decline_code, detail)


def intent_result(provider: str, intent: Mapping[str, Any]) -> ProviderResult:
    status = intent["status"]
    if status == "succeeded":
        return provider_result(provider, Outcome.succeeded, operation_id=intent["id"])
    if status in INTENT_PENDING:
        result = provider_result(
            provider, Outcome.pending, operation_id=intent["id"], detail=status
        )
        result.requires_action = status == "requires_action"
        return result
    error = intent.get("last_payment_error")
    if status == "canceled" or (status == "requires_payment_method" and error):
        decline = (error or {}).get("decline_code") or (error or {}).get("code") or status
        if decline == "payment_intent_authentication_failure":
            decline = AUTHENTICATION_FAILED
        return provider_result(
            provider, Outcome.declined, operation_id=intent["id"], decline_code=decline
        )
    return provider_result(provider, Outcome.pending, operation_id=intent["id"], detail=status)


def refund_result(provider: str, refund: Mapping[str, Any]) -> ProviderResult:
    outcome = _REFUND_OUTCOMES.get(refund["status"], Outcome.pending)
    decline = refund.get("failure_reason") or refund["status"]
    return provider_result(
        provider,
        outcome,
        operation_id=refund["id"],
        decline_code=decline if outcome == Outcome.declined else None,
    )


def declined(provider: str, exc: stripe.CardError) -> ProviderResult:
    body: Any = exc.json_body or {}
    error = body.get("error") or {}
    intent = error.get("payment_intent") or {}
    return provider_result(
        provider,
        Outcome.declined,
        operation_id=intent.get("id"),
        decline_code=error.get("decline_code") or exc.code or "card_declined",
    )


def call_error(provider: str, exc: stripe.StripeError) -> Exception:
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return ProviderConfigurationError(f"{provider}: Stripe refused the secret key")
    if isinstance(exc, stripe.InvalidRequestError):
        status_code = exc.http_status or 400
        code = "dispute_not_found" if status_code == 404 else (exc.code or "invalid_request")
        return ProviderRequestRejected(provider, status_code, code, exc.user_message or "")
    return ProviderUnavailable(f"{provider}: Stripe did not answer ({type(exc).__name__})")


def parse_event(provider: str, body: bytes) -> ProviderEvent | ProviderDisputeEvent:
    """A verified Stripe event as paysaga's (the types listed in the module docstring)."""
    try:
        event = json.loads(body)
        event_type = event["type"]
        obj = event["data"]["object"]
        if event_type.startswith("payment_intent."):
            return operation_event(provider, event, "charge", intent_result(provider, obj))
        if event_type.startswith("refund."):
            return operation_event(provider, event, "refund", refund_result(provider, obj))
        if event_type in ("charge.dispute.created", "charge.dispute.closed"):
            return dispute_event(provider, event)
    except InvalidEvent:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidEvent(f"not a well-formed Stripe event: {exc!r}") from exc
    raise InvalidEvent(f"Stripe event type {event_type!r} is not one paysaga reads")


def operation_event(
    provider: str, event: dict[str, Any], kind: str, result: ProviderResult
) -> ProviderEvent:
    obj = event["data"]["object"]
    metadata = obj.get("metadata") or {}
    if KEY_METADATA not in metadata or REFERENCE_METADATA not in metadata:
        raise InvalidEvent(f"Stripe {obj.get('object')} {obj.get('id')} is not paysaga's")
    if result.outcome not in _PROGRESS:
        raise InvalidEvent(f"Stripe event {event['id']} has no outcome")
    return ProviderEvent(
        id=str(event["id"]),
        type=str(event["type"]),
        created=int(event["created"]),
        sequence=_PROGRESS[result.outcome],
        provider=provider,
        kind=kind,
        operation_id=str(obj["id"]),
        idempotency_key=str(metadata[KEY_METADATA]),
        reference=str(metadata[REFERENCE_METADATA]),
        status=result.outcome.value,
        amount=int(obj["amount"]),
        currency=str(obj["currency"]).upper(),
        decline_code=result.decline_code,
    )


def dispute_event(provider: str, event: dict[str, Any]) -> ProviderDisputeEvent:
    state = dispute_state(provider, event["data"]["object"])
    if event["type"] == "charge.dispute.created":
        event_type = "dispute.created"
    elif state.status.is_final:
        event_type = f"dispute.{state.status.value}"
    else:
        raise InvalidEvent(f"Stripe event {event['id']} closes a dispute still open")
    return ProviderDisputeEvent(
        id=str(event["id"]),
        type=event_type,
        created=int(event["created"]),
        sequence=_DISPUTE_PROGRESS[state.status],
        provider=provider,
        dispute_id=state.dispute_id,
        reference=state.reference,
        charge_idempotency_key=state.charge_idempotency_key,
        amount=state.amount,
        currency=state.currency,
        fee=state.fee,
        reason=state.reason,
        status=state.status,
        evidence_due_by=state.evidence_due_by,
    )


def dispute_state(provider: str, dispute: dict[str, Any]) -> DisputeState:
    intent = dispute.get("payment_intent")
    metadata = (intent.get("metadata") or {}) if isinstance(intent, dict) else {}
    metadata = {**metadata, **(dispute.get("metadata") or {})}
    return DisputeState(
        provider=provider,
        dispute_id=dispute["id"],
        reference=metadata.get(REFERENCE_METADATA, ""),
        charge_idempotency_key=metadata.get(KEY_METADATA, ""),
        status=dispute_status(dispute["status"]),
        amount=int(dispute["amount"]),
        currency=str(dispute["currency"]).upper(),
        fee=dispute_fee(dispute),
        reason=str(dispute.get("reason") or ""),
        evidence_due_by=evidence_due_by(dispute),
        evidence_submitted_at=None,  # Stripe keeps a submission count, not a time
    )


def plain(obj: Any) -> dict[str, Any]:
    """A StripeObject as plain dicts and lists (what the webhooks' JSON gives too)."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict(recursive=True)
    return dict(obj)


def redirect(intent: Mapping[str, Any], return_url: str) -> str | None:
    action = intent.get("next_action") or {}
    redirect = action.get("redirect_to_url") or {}
    if action.get("type") == "redirect_to_url" and redirect.get("return_url") == return_url:
        return str(redirect["url"])
    return None


def dispute_status(status: str) -> DisputeStatus:
    try:
        return _DISPUTE_STATUSES[status]
    except KeyError:
        raise InvalidEvent(f"Stripe dispute status {status!r} is not known") from None


def dispute_fee(dispute: Mapping[str, Any]) -> int:
    return sum(
        int(transaction.get("fee") or 0)
        for transaction in dispute.get("balance_transactions") or []
        if isinstance(transaction, dict) and transaction.get("reporting_category") == "dispute"
    )


def evidence_due_by(dispute: Mapping[str, Any]) -> str:
    due_by = (dispute.get("evidence_details") or {}).get("due_by")
    moment = datetime.fromtimestamp(int(due_by), UTC) if due_by else datetime.now(UTC)
    return moment.isoformat()


def settlement_lines(transaction: Mapping[str, Any]) -> list[SettlementLine]:
    """A balance transaction as paysaga's lines (none if it is no payment of paysaga's)."""
    source = transaction.get("source")
    category = transaction.get("reporting_category")
    if not isinstance(source, dict):
        return []
    intent = source.get("payment_intent")
    if not isinstance(intent, dict):
        intent = {}
    metadata = {
        **(intent.get("metadata") or {}),
        **(source.get("metadata") or {}),
    }
    reference = metadata.get(REFERENCE_METADATA)
    if not reference:
        return []
    amount, currency = int(source["amount"]), str(source["currency"]).upper()
    if category == "charge" and "id" in intent:
        return [SettlementLine("charge", reference, amount, currency, str(intent["id"]))]
    if category == "refund":
        return [SettlementLine("refund", reference, amount, currency, str(source["id"]))]
    if category == "dispute":
        lines = [SettlementLine("dispute", reference, amount, currency, str(source["id"]))]
        fee = int(transaction.get("fee") or 0)
        if fee:
            fee_currency = str(transaction["currency"]).upper()
            lines.append(
                SettlementLine("dispute_fee", reference, fee, fee_currency, str(source["id"]))
            )
        return lines
    if category == "dispute_reversal":
        return [SettlementLine("dispute_reversal", reference, amount, currency, str(source["id"]))]
    return []
