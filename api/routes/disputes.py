"""Disputes (chargebacks): reported by the providers' webhooks, answered by the merchant's operators."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import failures
from api.deps import ApiKey, MerchantView, OpsKey, Services, ServicesDep
from api.lists import ListWindow
from api.routes.payments import UPDATE_RPC_TIMEOUT
from api.sagas import raise_if_not_signed, saga_timings, signed_decision
from api.schemas import Dispute, DisputeEvidence, DisputeList, DisputeStatusName
from domain import search_attributes as sa
from domain.disputes import (
    WORKFLOW_NAME,
    DisputeAnswer,
    DisputeEventSignal,
    DisputeInput,
    DisputeStatus,
    dispute_id_for,
)
from domain.errors import Conflict, NotFound, ServiceUnavailable
from domain.payments import PaymentKind
from paysaga.store import DisputeRow, MerchantStore
from providers.webhooks import ProviderDisputeEvent

log = logging.getLogger("paysaga.api.disputes")
router = APIRouter(prefix="/v1/disputes", tags=["disputes"])


def dispute_from_row(row: DisputeRow) -> Dispute:
    return Dispute.model_validate(row, from_attributes=True)


@router.get("", response_model=DisputeList)
async def list_disputes(
    books: MerchantView,
    window: ListWindow,
    payment_id: str | None = None,
    status: DisputeStatusName | None = None,
) -> DisputeList:
    """Disputes, newest first; pass the last id as `starting_after` for the next page (or the
    first as `ending_before` for the previous one)."""
    if window.cursor and await books.get_dispute(window.cursor) is None:
        raise NotFound(f"no dispute {window.cursor} to page from", code="cursor_not_found")
    rows, has_more = await books.list_disputes(payment_id=payment_id, status=status, window=window)
    return DisputeList(data=[dispute_from_row(r) for r in rows], has_more=has_more)


@router.get("/{dispute_id}", response_model=Dispute)
async def get_dispute(dispute_id: str, books: MerchantView) -> Dispute:
    """One dispute; its id is also its Temporal workflow id."""
    row = await books.get_dispute(dispute_id)
    if row is None:
        raise NotFound(f"no dispute {dispute_id}")
    return dispute_from_row(row)


@router.post("/{dispute_id}/evidence", response_model=Dispute)
async def submit_evidence(
    dispute_id: str, body: DisputeEvidence, svc: ServicesDep, books: MerchantView, key: OpsKey
) -> Dispute:
    """Contest a dispute in `needs_response` (ops scope): forwarded to the provider, `under_review`."""
    answer = DisputeAnswer("evidence", body.text, operator=key.actor)
    return await _answer(svc, books, key, dispute_id, answer)


@router.post("/{dispute_id}/accept", response_model=Dispute)
async def accept_dispute(
    dispute_id: str, svc: ServicesDep, books: MerchantView, key: OpsKey
) -> Dispute:
    """Accept a dispute in `needs_response` (ops scope): `lost`, the withdrawal stays."""
    return await _answer(svc, books, key, dispute_id, DisputeAnswer("accept", operator=key.actor))


async def _answer(
    svc: Services, books: MerchantStore, key: ApiKey, dispute_id: str, answer: DisputeAnswer
) -> Dispute:
    """Send the merchant's answer to the dispute's saga; answer the dispute it leaves behind."""
    if await books.get_dispute(dispute_id) is None:
        raise NotFound(f"no dispute {dispute_id}")
    not_open = Conflict(f"{dispute_id} does not need a response", code="dispute_not_open")
    handle = svc.temporal.get_workflow_handle(dispute_id)
    try:
        await handle.execute_update(
            "respond",
            signed_decision(svc, dispute_id, "respond", answer),
            rpc_timeout=UPDATE_RPC_TIMEOUT,
        )
    except WorkflowUpdateFailedError as exc:
        raise_if_not_signed(exc)
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == failures.DISPUTE_ANSWER_FAILED:
            raise ServiceUnavailable("the provider could not be reached; retry") from exc
        raise not_open from exc
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise ServiceUnavailable("the dispute's saga did not answer in time; retry") from exc
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise not_open from exc  # the saga has finished
        raise ServiceUnavailable("the dispute's saga did not answer in time; retry") from exc
    detail = {"answer": answer.action, "key_name": key.name}
    await books.record_ops_action(key.actor, f"dispute.{answer.action}", dispute_id, detail)
    row = await books.get_dispute(dispute_id)
    assert row is not None
    return dispute_from_row(row)


async def deliver_dispute_event(svc: Services, provider: str, event: ProviderDisputeEvent) -> None:
    """Signal a provider's dispute event to its saga, starting the saga if it is the first.

    Whichever event of a dispute comes first (a verdict may overtake `dispute.created`) starts
    the saga under the id derived from the provider's dispute id; a closed saga takes no more
    events (and starts no new run). An event about no deposit of ours at this provider is
    acknowledged and left: no saga books it, so reconciliation reports the dispute's settlement
    lines as a mismatch instead of waiting for its booking (`paysaga.reconciliation`).
    """
    payment = await svc.store.get_payment(event.reference)
    if payment is None or payment.kind != PaymentKind.DEPOSIT or payment.provider != provider:
        log.warning(
            "dispute %s of %s names no deposit of ours: left to reconciliation",
            event.dispute_id,
            provider,
        )
        return
    dispute_id = dispute_id_for(provider, event.dispute_id)
    signal = DisputeEventSignal(
        event.id,
        event.type,
        event.sequence,
        event.status.value,
        event.amount,
        event.currency,
        event.fee,
        event.reason,
        event.evidence_due_by,
    )
    saga = DisputeInput(
        dispute_id,
        payment.merchant_id,
        payment.id,
        payment.customer_id,
        payment.currency,
        provider,
        event.dispute_id,
        svc.settings.house_owner_id,
        saga_timings(svc.settings),
    )
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(sa.MERCHANT_ID, payment.merchant_id),
            SearchAttributePair(sa.CUSTOMER_ID, payment.customer_id),
            SearchAttributePair(sa.CURRENCY, event.currency),
            SearchAttributePair(sa.AMOUNT_MINOR, event.amount),
            SearchAttributePair(sa.PROVIDER, provider),
            SearchAttributePair(sa.DISPUTE_STATUS, DisputeStatus.NEEDS_RESPONSE.value),
        ]
    )
    try:
        await svc.temporal.start_workflow(
            WORKFLOW_NAME,
            saga,
            id=dispute_id,
            task_queue=svc.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
            static_summary=f"dispute of {event.amount} {event.currency} minor units"
            f" on {payment.id}",
            start_signal="dispute_event",
            start_signal_args=[signed_decision(svc, dispute_id, "dispute_event", signal)],
        )
    except WorkflowAlreadyStartedError:
        pass  # its saga has ended: nothing about it changes any more
    except RPCError as exc:
        raise ServiceUnavailable(f"could not deliver the dispute event: {exc}") from exc
