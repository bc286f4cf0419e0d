"""Payments of every kind: look one up, list them with filters and cursor pagination."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import failures
from api.deps import MerchantData, MerchantView, OpsKey, Services, ServicesDep
from api.lists import METADATA_FILTER_OPENAPI, ListWindow, MetadataFilter
from api.sagas import payment_from_row, raise_if_not_signed, saga_timings, signed_decision
from api.schemas import Payment, PaymentList, ResolveCreate, ReviewCreate
from domain import search_attributes as sa
from domain.errors import Conflict, NotFound, PaysagaError, ServiceUnavailable
from domain.payments import PaymentKind, PaymentStatus, ResolveDecision, ReviewDecision
from paysaga.settings import Settings
from paysaga.store import MerchantStore, PaymentRow
from providers.routing import route
from workflows.resolution import RESOLUTION_WORKFLOW, ResolutionInput, resolution_workflow_id

router = APIRouter(prefix="/v1/payments", tags=["payments"])


@router.get("/{payment_id}", response_model=Payment)
async def get_payment(payment_id: str, books: MerchantView) -> Payment:
    """One payment; its id is also its Temporal workflow id."""
    row = await books.get_payment(payment_id)
    if row is None:
        raise NotFound(f"no payment {payment_id}")
    return payment_from_row(row)


@router.get("", response_model=PaymentList, openapi_extra=METADATA_FILTER_OPENAPI)
async def list_payments(
    books: MerchantView,
    window: ListWindow,
    metadata: MetadataFilter,
    customer_id: str | None = None,
    kind: PaymentKind | None = None,
    status: PaymentStatus | None = None,
) -> PaymentList:
    """Payments, newest first; pass the last id as `starting_after` for the next page (or the
    first as `ending_before` for the previous one); `metadata[key]=value` filters."""
    if window.cursor and await books.get_payment(window.cursor) is None:
        raise NotFound(f"no payment {window.cursor} to page from", code="cursor_not_found")
    rows, has_more = await books.list_payments(
        customer_id=customer_id, kind=kind, status=status, window=window, metadata=metadata
    )
    return PaymentList(data=[payment_from_row(r) for r in rows], has_more=has_more)


# An update waits for a worker to run it: with none polling, answer 503 rather than hang.
UPDATE_RPC_TIMEOUT = timedelta(seconds=15)


async def _update_saga(
    svc: Services,
    books: MerchantStore,
    payment_id: str,
    update: str,
    arg: object,
    refusal: PaysagaError,
) -> Payment:
    """Send an update to the merchant's payment's saga; answer the payment it leaves behind."""
    if await books.get_payment(payment_id) is None:
        raise NotFound(f"no payment {payment_id}")
    handle = svc.temporal.get_workflow_handle(payment_id)
    args = [] if arg is None else [signed_decision(svc, payment_id, update, arg)]
    try:
        await handle.execute_update(update, args=args, rpc_timeout=UPDATE_RPC_TIMEOUT)
    except WorkflowUpdateFailedError as exc:
        raise_if_not_signed(exc)
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == failures.RESOLVE_FAILED:
            # Taken, then its booking failed (a compensation refused): still parked.
            raise Conflict(
                f"the resolution could not be booked: {cause}", code="resolve_failed"
            ) from exc
        raise refusal from exc
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise ServiceUnavailable("the payment's saga did not answer in time; retry") from exc
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise refusal from exc  # the saga has finished
        raise ServiceUnavailable("the payment's saga did not answer in time; retry") from exc
    row = await books.get_payment(payment_id)
    assert row is not None
    return payment_from_row(row)


@router.post("/{payment_id}/cancel", response_model=Payment)
async def cancel_payment(payment_id: str, svc: ServicesDep, books: MerchantData) -> Payment:
    """Cancel a payment before its point of no return (charge, payout or conversion sent); 409 after."""
    too_late = Conflict(f"{payment_id} can no longer be canceled", code="payment_not_cancelable")
    return await _update_saga(svc, books, payment_id, "cancel", None, too_late)


@router.post("/{payment_id}/review", response_model=Payment)
async def review_payment(
    payment_id: str, body: ReviewCreate, svc: ServicesDep, books: MerchantView, key: OpsKey
) -> Payment:
    """An operator approves or rejects a payment in `requires_review` (ops scope); audited."""
    decision = ReviewDecision(body.decision, body.reason, reviewer=key.actor)
    not_in_review = Conflict(
        f"{payment_id} is not waiting for review", code="payment_not_in_review"
    )
    payment = await _update_saga(svc, books, payment_id, "review", decision, not_in_review)
    detail = {"decision": body.decision, "reason": body.reason, "key_name": key.name}
    await books.record_ops_action(key.actor, "payment.review", payment_id, detail)
    return payment


@router.post("/{payment_id}/resolve", response_model=Payment)
async def resolve_payment(
    payment_id: str, body: ResolveCreate, svc: ServicesDep, books: MerchantView, key: OpsKey
) -> Payment:
    """An operator ends a payment in `requires_intervention` after checking with the provider."""
    decision = ResolveDecision(body.outcome, body.reason, operator=key.actor)
    not_stuck = Conflict(
        f"{payment_id} does not require intervention", code="payment_not_requiring_intervention"
    )
    row = await books.get_payment(payment_id)
    if row is None:
        raise NotFound(f"no payment {payment_id}")
    if await saga_is_running(svc.temporal, payment_id):
        payment = await _update_saga(svc, books, payment_id, "resolve", decision, not_stuck)
    else:  # terminated or reset from the Temporal UI: booked without it
        await _resolve_closed_saga(svc, row, decision, not_stuck)
        resolved = await books.get_payment(payment_id)
        assert resolved is not None
        payment = payment_from_row(resolved)
    detail = {"outcome": body.outcome, "reason": body.reason, "key_name": key.name}
    await books.record_ops_action(key.actor, "payment.resolve", payment_id, detail)
    return payment


# How long the API waits for a resolution booked without the saga before answering 503.
RESOLUTION_WAIT_SECONDS = 15.0


async def saga_is_running(temporal: Client, saga_id: str) -> bool:
    """Whether a run of the payment's (or refund's) saga is running under its id."""
    try:
        description = await temporal.get_workflow_handle(saga_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise ServiceUnavailable(f"could not reach Temporal: {exc}") from exc
    return description.status == WorkflowExecutionStatus.RUNNING


async def _resolve_closed_saga(
    svc: Services, row: PaymentRow, decision: ResolveDecision, refusal: PaysagaError
) -> None:
    """Book the resolution of a payment whose saga is closed, as its saga would have."""
    if row.status != PaymentStatus.REQUIRES_INTERVENTION:
        raise refusal
    settings: Settings = svc.settings
    currency = str(row.details.get("target_currency") or row.currency)
    operation = "charge" if row.kind == "deposit" else "payout"
    # Where the saga may have sent it: the installation's route, and the account it took.
    providers = route(settings.provider_routing, operation, currency)
    if row.provider and row.provider not in providers:
        providers.insert(0, row.provider)
    resolution = ResolutionInput(
        row.id,
        decision.outcome,
        decision.reason,
        decision.operator,
        providers,
        saga_timings(settings),
    )
    attributes = resolution_attributes(row.merchant_id, row.kind, row.customer_id)
    await resolve_without_saga(
        svc.temporal, settings.task_queue, resolution, refusal, attributes=attributes
    )


def resolution_attributes(merchant_id: str, kind: str, customer_id: str) -> TypedSearchAttributes:
    """The resolution workflow's search attributes: found beside its payment in the UI."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.MERCHANT_ID, merchant_id),
            SearchAttributePair(sa.PAYMENT_KIND, kind),
            SearchAttributePair(sa.CUSTOMER_ID, customer_id),
        ]
    )


async def resolve_without_saga(
    temporal: Client,
    task_queue: str,
    resolution: ResolutionInput,
    refusal: PaysagaError,
    *,
    attributes: TypedSearchAttributes | None = None,
) -> None:
    """Start the `PaymentResolution` workflow of a payment (or refund) whose saga is closed and
    wait for it. A second resolve is refused (`refusal`), as the saga refuses it, once one was
    started; one that failed to book may be sent again."""
    try:
        handle = await temporal.start_workflow(
            RESOLUTION_WORKFLOW,
            resolution,
            id=resolution_workflow_id(resolution.payment_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            search_attributes=attributes,
            static_summary=f"operator's {resolution.outcome} resolution of {resolution.payment_id}",
            result_type=str,
        )
    except WorkflowAlreadyStartedError as exc:
        raise refusal from exc
    except RPCError as exc:
        raise ServiceUnavailable(f"could not start the resolution workflow: {exc}") from exc
    try:
        await asyncio.wait_for(handle.result(), RESOLUTION_WAIT_SECONDS)
    except TimeoutError as exc:
        raise ServiceUnavailable("the resolution is still being booked; read the payment") from exc
    except WorkflowFailureError as exc:
        cause = exc.cause.cause if isinstance(exc.cause, ActivityError) else exc.cause
        if isinstance(cause, ApplicationError) and cause.type in (
            failures.NOT_REQUIRING_INTERVENTION,
            failures.INVALID_OUTCOME,
        ):
            raise refusal from exc
        raise Conflict(
            f"the resolution could not be booked: {cause}", code="resolve_failed"
        ) from exc
