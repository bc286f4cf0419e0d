"""Provider webhooks: verified over the raw body, deduplicated, delivered to the payment's saga."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from fastapi import APIRouter, Request
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Services, ServicesDep
from api.routes.disputes import deliver_dispute_event
from api.sagas import signed_decision
from domain.errors import NotFound, ServiceUnavailable
from domain.payments import ProviderEventSignal
from domain.refunds import refund_of_key
from providers.accounts import is_own_account
from providers.webhooks import (
    SIGNATURE_HEADER,
    ProviderDisputeEvent,
    ProviderEvent,
    parse_any_event,
    verify,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

HOLD_SECONDS = 2.0  # how long a deposit's event may wait for its saga to end or name its provider


async def verified_event(
    svc: Services, account_id: str, headers: Mapping[str, str], body: bytes
) -> tuple[ProviderEvent | ProviderDisputeEvent, str | None]:
    """The event, verified over the raw body, and the merchant whose own account sent it (None:
    an installation provider, which serves every merchant)."""
    now, tolerance = int(time.time()), svc.settings.webhook_tolerance_seconds
    secret = svc.settings.psp_webhook_secrets.get(account_id)
    if secret is not None:
        verify(
            secret, headers.get(SIGNATURE_HEADER, ""), body, now=now, tolerance_seconds=tolerance
        )
        return parse_any_event(body), None
    found = await svc.store.own_account_secrets(account_id) if is_own_account(account_id) else None
    if found is None or found.webhook_secret is None:
        raise NotFound(f"no provider {account_id!r}", code="provider_not_found")
    adapter = await svc.providers.get(account_id)
    adapter.verify_webhook(
        headers, body, secret=found.webhook_secret, now=now, tolerance_seconds=tolerance
    )
    event = adapter.parse_webhook(body)
    # A PSP whose dispute names its own charge, not our payment, completes the event by its API
    # (an adapter's optional `complete_dispute_event`, e.g. Stripe's).
    complete = getattr(adapter, "complete_dispute_event", None)
    if isinstance(event, ProviderDisputeEvent) and complete is not None:
        event = await complete(event)
    return event, found.row.merchant_id


@router.post("/providers/{provider}")
async def receive_provider_event(
    provider: str, request: Request, svc: ServicesDep
) -> dict[str, object]:
    """Take a signed provider event and signal it to the workflow of the payment it names.

    `{provider}` is the provider account's id: an installation provider (its name, e.g.
    `sandbox-cards`) or a merchant's own account (`pa_...`), whose adapter verifies the event
    with that account's webhook secret. An own account's events reach its merchant's payments
    only.
    """
    body = await request.body()
    # A wrong signature or a malformed event raises its provider error: api.problems answers it.
    event, merchant_id = await verified_event(svc, provider, request.headers, body)
    if merchant_id is not None:
        deposit = await svc.store.for_merchant(merchant_id).get_payment(event.reference)
        if deposit is None:
            raise NotFound(
                f"no payment {event.reference!r} of this account's merchant",
                code="payment_not_found",
            )
    if isinstance(event, ProviderDisputeEvent):  # a chargeback: to the dispute's own saga
        if await svc.store.webhook_seen(provider, event.id):
            return {"received": True, "duplicate": True}
        await deliver_dispute_event(svc, provider, event)
        await svc.store.record_webhook(provider, event.id, event.reference, event.type)
        return {"received": True, "duplicate": False}
    # A refund's events name its deposit; its key names the refund, whose saga waits for them.
    refund_id = refund_of_key(event.idempotency_key)
    saga_id = refund_id or event.reference
    # One round trip: seen before? is the saga's row (the payment's, or the refund's) terminal?
    # If terminal, the same statement records the event and no signal is sent. That is safe: a
    # saga writes its terminal status as its last step (`set_status`, after which it only waits
    # for its handlers to finish and returns) and reads no provider event after it, so the
    # signal could change nothing; most often its workflow is closed already and the signal
    # would only cost Temporal a lookup that ends NOT_FOUND. Terminal is succeeded, failed or
    # canceled for a payment, succeeded or failed for a refund; any other status (among them
    # `requires_intervention`, which an event may still resolve), or no row, gets the signal.
    arrival = await svc.store.webhook_arrived(
        provider,
        event.id,
        event.reference,
        event.type,
        saga_payment_id=None if refund_id else event.reference,
        saga_refund_id=refund_id,
    )
    # A deposit that has not written its provider yet either waits for its charge's answer or
    # has it in hand and is booking it: a signal now would most often land in its last workflow
    # task, which Temporal then refuses (UNHANDLED_COMMAND) and the worker runs again. Hold the
    # event (a few reads with backoff, HOLD_SECONDS at most) until the saga has ended (no
    # signal) or shows the provider it waits on (signal); past the hold, signal anyway: an
    # event is never dropped for a saga that may need it.
    pause, held = 0.01, 0.0
    while arrival.saga_unannounced and not arrival.seen and held < HOLD_SECONDS:
        await asyncio.sleep(pause)
        held, pause = held + pause, min(pause * 2, 0.25)
        arrival = await svc.store.webhook_arrived(
            provider, event.id, event.reference, event.type, saga_payment_id=event.reference
        )
    if arrival.seen:
        return {"received": True, "duplicate": True}
    if arrival.saga_ended:
        return {"received": True, "duplicate": False}
    signal = ProviderEventSignal(
        event_id=event.id,
        provider=provider,
        operation_kind=event.kind,
        idempotency_key=event.idempotency_key,
        status=event.status,
        sequence=event.sequence,
        decline_code=event.decline_code,
        operation_id=event.operation_id,
        amount=event.amount,
        currency=event.currency,
    )
    try:
        await svc.temporal.get_workflow_handle(saga_id).signal(
            "provider_event", signed_decision(svc, saga_id, "provider_event", signal)
        )
    except RPCError as exc:
        # A finished or unknown payment needs nothing more: acknowledge so the PSP stops retrying.
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise ServiceUnavailable(f"could not deliver the event: {exc}") from exc
    await svc.store.record_webhook(provider, event.id, event.reference, event.type)
    return {"received": True, "duplicate": False}
