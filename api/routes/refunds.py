"""Refunds: money back to the card that paid a deposit, in full or in parts, each a Refund saga."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import IdempotencyKey, MerchantData, MerchantView, OpsKey, Services, ServicesDep
from api.idempotency import derived_id, request_fingerprint, run_once
from api.lists import ListWindow
from api.routes.payments import (
    UPDATE_RPC_TIMEOUT,
    resolution_attributes,
    resolve_without_saga,
    saga_is_running,
)
from api.sagas import raise_if_not_signed, saga_timings, signed_decision
from api.schemas import Refund, RefundCreate, RefundList, ResolveCreate
from domain import search_attributes as sa
from domain.errors import Conflict, NotFound, ServiceUnavailable
from domain.payments import ResolveDecision
from domain.refunds import REFUND_ID_PREFIX, SEARCH_KIND, WORKFLOW_NAME, RefundInput, RefundStatus
from paysaga.store import MerchantStore, RefundRow
from paysaga.store.refunds import RefundableDeposit
from workflows.resolution import ResolutionInput

router = APIRouter(tags=["refunds"])


def refund_from_row(row: RefundRow) -> Refund:
    return Refund.model_validate(row, from_attributes=True)


@router.post("/v1/payments/{payment_id}/refunds", status_code=202, response_model=Refund)
async def create_refund(
    payment_id: str,
    body: RefundCreate,
    request: Request,
    svc: ServicesDep,
    books: MerchantData,
    idempotency_key: IdempotencyKey,
) -> Response:
    """Refund (part of) a succeeded deposit; the answer is the refund in `processing`."""
    fingerprint = request_fingerprint(request.url.path, body)

    async def start() -> Refund:
        refund_id = derived_id(REFUND_ID_PREFIX, books.merchant_id, idempotency_key, fingerprint)
        row, deposit = await books.create_refund(refund_id, payment_id, body.amount, body.reason)
        if not RefundStatus(row.status).is_terminal:
            await start_refund_saga(svc, books, row, deposit)
        return refund_from_row(row)

    return await run_once(
        books, svc.settings.idempotency_key_ttl_hours, idempotency_key, fingerprint, 202, start
    )


async def start_refund_saga(
    svc: Services, books: MerchantStore, row: RefundRow, deposit: RefundableDeposit
) -> None:
    """Start the refund's saga under its id; a repeated call starts nothing new."""
    refund = RefundInput(
        refund_id=row.id,
        payment_id=row.payment_id,
        merchant_id=books.merchant_id,
        customer_id=row.customer_id,
        amount=row.amount,
        currency=row.currency,
        provider=deposit.provider,
        charge_idempotency_key=f"{row.payment_id}:charge",  # the deposit saga's charge key
        timings=saga_timings(svc.settings),
    )
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(sa.MERCHANT_ID, books.merchant_id),
            SearchAttributePair(sa.PAYMENT_KIND, SEARCH_KIND),
            SearchAttributePair(sa.PAYMENT_STATUS, row.status),
            SearchAttributePair(sa.CUSTOMER_ID, row.customer_id),
            SearchAttributePair(sa.CURRENCY, row.currency),
            SearchAttributePair(sa.AMOUNT_MINOR, row.amount),
            SearchAttributePair(sa.PROVIDER, deposit.provider),
        ]
    )
    try:
        await svc.temporal.start_workflow(
            WORKFLOW_NAME,
            refund,
            id=row.id,
            task_queue=svc.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
            static_summary=(
                f"refund of {row.amount} {row.currency} minor units of {row.payment_id}"
                f" for {row.customer_id}"
            ),
        )
    except WorkflowAlreadyStartedError:
        pass  # the first attempt of this request started it
    except RPCError as exc:
        raise ServiceUnavailable(f"could not start the refund workflow: {exc}") from exc


@router.get("/v1/payments/{payment_id}/refunds", response_model=RefundList)
async def list_refunds(
    payment_id: str,
    books: MerchantView,
    window: ListWindow,
) -> RefundList:
    """A payment's refunds, oldest first; pass the last id as `starting_after` for the next page
    (or the first as `ending_before` for the previous one)."""
    if await books.get_payment(payment_id) is None:
        raise NotFound(f"no payment {payment_id}")
    if window.cursor and await books.get_refund(window.cursor) is None:
        raise NotFound(f"no refund {window.cursor} to page from", code="cursor_not_found")
    rows, has_more = await books.list_refunds(payment_id, window)
    return RefundList(data=[refund_from_row(r) for r in rows], has_more=has_more)


@router.get("/v1/refunds/{refund_id}", response_model=Refund)
async def get_refund(refund_id: str, books: MerchantView) -> Refund:
    """One refund; its id is also its Temporal workflow id."""
    row = await books.get_refund(refund_id)
    if row is None:
        raise NotFound(f"no refund {refund_id}")
    return refund_from_row(row)


@router.post("/v1/refunds/{refund_id}/resolve", response_model=Refund)
async def resolve_refund(
    refund_id: str, body: ResolveCreate, svc: ServicesDep, books: MerchantView, key: OpsKey
) -> Refund:
    """An operator ends a refund in `requires_intervention` after checking with the provider."""
    refund = await books.get_refund(refund_id)
    if refund is None:
        raise NotFound(f"no refund {refund_id}")
    not_stuck = Conflict(
        f"{refund_id} does not require intervention", code="refund_not_requiring_intervention"
    )
    decision = ResolveDecision(body.outcome, body.reason, operator=key.actor)
    if await saga_is_running(svc.temporal, refund_id):
        await _update_refund_saga(svc, refund_id, decision, not_stuck)
    else:  # terminated or reset from the Temporal UI: booked without it
        await _resolve_closed_refund_saga(svc, refund, decision, not_stuck)
    detail = {"outcome": body.outcome, "reason": body.reason, "key_name": key.name}
    await books.record_ops_action(key.actor, "refund.resolve", refund_id, detail)
    row = await books.get_refund(refund_id)
    assert row is not None
    return refund_from_row(row)


async def _update_refund_saga(
    svc: Services, refund_id: str, decision: ResolveDecision, refusal: Conflict
) -> None:
    """Send the resolve update to the refund's running saga."""
    handle = svc.temporal.get_workflow_handle(refund_id)
    try:
        await handle.execute_update(
            "resolve",
            signed_decision(svc, refund_id, "resolve", decision),
            rpc_timeout=UPDATE_RPC_TIMEOUT,
        )
    except WorkflowUpdateFailedError as exc:
        raise_if_not_signed(exc)
        raise refusal from exc
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise ServiceUnavailable("the refund's saga did not answer in time; retry") from exc
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise refusal from exc  # the saga has finished
        raise ServiceUnavailable("the refund's saga did not answer in time; retry") from exc


async def _resolve_closed_refund_saga(
    svc: Services, refund: RefundRow, decision: ResolveDecision, refusal: Conflict
) -> None:
    """Book the resolution of a refund whose saga is closed, as its saga would have."""
    if refund.status != RefundStatus.REQUIRES_INTERVENTION:
        raise refusal
    resolution = ResolutionInput(
        refund.id,
        decision.outcome,
        decision.reason,
        decision.operator,
        [refund.provider],
        saga_timings(svc.settings),
    )
    attributes = resolution_attributes(refund.merchant_id, SEARCH_KIND, refund.customer_id)
    await resolve_without_saga(
        svc.temporal, svc.settings.task_queue, resolution, refusal, attributes=attributes
    )
