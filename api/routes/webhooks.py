"""Provider webhooks: verified over the raw body, deduplicated, delivered to the payment's saga."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ServicesDep
from api.routes.disputes import deliver_dispute_event
from domain.errors import NotFound, ServiceUnavailable
from domain.payments import ProviderEventSignal
from domain.refunds import refund_of_key
from providers.webhooks import SIGNATURE_HEADER, ProviderDisputeEvent, parse_any_event, verify

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("/providers/{provider}")
async def receive_provider_event(
    provider: str, request: Request, svc: ServicesDep
) -> dict[str, object]:
    """Take a signed provider event and signal it to the workflow of the payment it names."""
    secret = svc.settings.psp_webhook_secrets.get(provider)
    if secret is None:
        raise NotFound(f"no provider {provider!r}", code="provider_not_found")
    body = await request.body()
    # A wrong signature or a malformed event raises its provider error: api.problems answers it.
    verify(
        secret,
        request.headers.get(SIGNATURE_HEADER, ""),
        body,
        now=int(time.time()),
        tolerance_seconds=svc.settings.webhook_tolerance_seconds,
    )
    event = parse_any_event(body)
    if await svc.store.webhook_seen(provider, event.id):
        return {"received": True, "duplicate": True}
    if isinstance(event, ProviderDisputeEvent):  # a chargeback: to the dispute's own saga
        await deliver_dispute_event(svc, provider, event)
        await svc.store.record_webhook(provider, event.id, event.reference, event.type)
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
    # A refund's events name its deposit; its key names the refund, whose saga waits for them.
    saga_id = refund_of_key(event.idempotency_key) or event.reference
    try:
        await svc.temporal.get_workflow_handle(saga_id).signal("provider_event", signal)
    except RPCError as exc:
        # A finished or unknown payment needs nothing more: acknowledge so the PSP stops retrying.
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise ServiceUnavailable(f"could not deliver the event: {exc}") from exc
    await svc.store.record_webhook(provider, event.id, event.reference, event.type)
    return {"received": True, "duplicate": False}
