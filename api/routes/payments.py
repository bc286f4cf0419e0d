"""Payments of every kind: look one up, list them with filters and cursor pagination."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import MerchantData, OpsKey, Services, ServicesDep
from api.sagas import payment_from_row
from api.schemas import Payment, PaymentList, ResolveCreate, ReviewCreate
from domain.errors import Conflict, NotFound, PaysagaError, ServiceUnavailable
from domain.payments import ResolveDecision, ReviewDecision
from paysaga.store import MerchantStore

router = APIRouter(prefix="/v1/payments", tags=["payments"])

Status = Literal[
    "processing", "requires_review", "requires_intervention", "succeeded", "failed", "canceled"
]


@router.get("/{payment_id}", response_model=Payment)
async def get_payment(payment_id: str, books: MerchantData) -> Payment:
    """One payment; its id is also its Temporal workflow id."""
    row = await books.get_payment(payment_id)
    if row is None:
        raise NotFound(f"no payment {payment_id}")
    return payment_from_row(row)


@router.get("", response_model=PaymentList)
async def list_payments(
    books: MerchantData,
    customer_id: str | None = None,
    kind: Literal["deposit", "withdrawal", "transfer"] | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: str | None = None,
) -> PaymentList:
    """Payments, newest first; pass the last id as `starting_after` for the next page."""
    if starting_after and await books.get_payment(starting_after) is None:
        raise NotFound(f"no payment {starting_after} to start after", code="cursor_not_found")
    rows, has_more = await books.list_payments(
        customer_id=customer_id,
        kind=kind,
        status=status,
        limit=limit,
        starting_after=starting_after,
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
    args = [] if arg is None else [arg]
    try:
        await handle.execute_update(update, args=args, rpc_timeout=UPDATE_RPC_TIMEOUT)
    except WorkflowUpdateFailedError as exc:
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
    payment_id: str, body: ReviewCreate, svc: ServicesDep, books: MerchantData, key: OpsKey
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
    payment_id: str, body: ResolveCreate, svc: ServicesDep, books: MerchantData, key: OpsKey
) -> Payment:
    """An operator ends a payment in `requires_intervention` after checking with the provider."""
    decision = ResolveDecision(body.outcome, body.reason, operator=key.actor)
    not_stuck = Conflict(
        f"{payment_id} does not require intervention", code="payment_not_requiring_intervention"
    )
    payment = await _update_saga(svc, books, payment_id, "resolve", decision, not_stuck)
    detail = {"outcome": body.outcome, "reason": body.reason, "key_name": key.name}
    await books.record_ops_action(key.actor, "payment.resolve", payment_id, detail)
    return payment
