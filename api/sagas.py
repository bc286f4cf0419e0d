"""Starting a payment saga: the payment row first, then its workflow, both keyed by the payment id."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities import failures
from api.deps import Services
from api.schemas import Payment
from domain import search_attributes as sa
from domain.decisions import signed
from domain.errors import NotFound, ServiceUnavailable
from domain.payments import DEPOSIT_WORKFLOW, PaymentKind, PaymentStatus, SagaTimings
from paysaga.observability.metrics import PAYMENTS_STARTED
from paysaga.settings import Settings
from paysaga.store import MerchantStore, PaymentRow

Decision = TypeVar("Decision")

TERMINAL_STATUSES = {status.value for status in PaymentStatus if status.is_terminal}
WORKFLOW_NAMES = {
    PaymentKind.DEPOSIT: DEPOSIT_WORKFLOW,
    PaymentKind.WITHDRAWAL: "Withdrawal",
    PaymentKind.TRANSFER: "Transfer",
}


async def start_payment(
    svc: Services,
    books: MerchantStore,
    *,
    kind: PaymentKind,
    payment_id: str,
    customer_id: str,
    amount: int,
    currency: str,
    provider: str | None,
    details: dict[str, Any],
    workflow_input: Any,
    routing: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> Payment:
    """Record the payment as `processing` and start its saga; a repeated call starts nothing new.

    `routing`, why the payment goes to its providers in that order, is kept on the row and as the
    workflow's memo `routing` (seen in the Temporal UI beside the saga). A retried request whose
    first attempt recorded the payment but started no saga follows the routing recorded then.

    A customer the merchant does not have is refused (404 `customer_not_found`) by the INSERT
    itself (no lookup of its own). The row is committed before the workflow starts, never
    concurrently: the saga's first local steps update it.
    """
    row = await books.insert_customer_payment(
        payment_id, kind.value, customer_id, amount, currency, provider, details, routing, metadata
    )
    if row is None:
        raise NotFound(f"no customer {customer_id}", code="customer_not_found")
    if row.status in TERMINAL_STATUSES:
        return payment_from_row(row)  # already ended (e.g. swept as never started): start nothing
    workflow_input = as_routed(workflow_input, routing, row.routing)
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(sa.MERCHANT_ID, books.merchant_id),
            SearchAttributePair(sa.PAYMENT_KIND, kind.value),
            SearchAttributePair(sa.PAYMENT_STATUS, "processing"),
            SearchAttributePair(sa.CUSTOMER_ID, customer_id),
            SearchAttributePair(sa.CURRENCY, currency),
            SearchAttributePair(sa.AMOUNT_MINOR, amount),
        ]
    )
    try:
        await svc.temporal.start_workflow(
            WORKFLOW_NAMES[kind],
            workflow_input,
            id=payment_id,
            task_queue=svc.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
            memo=None if row.routing is None else {"routing": row.routing},
            # No execution timeout: a saga ends by its own steps, never cut off mid-way.
            static_summary=f"{kind.value} of {amount} {currency} minor units for {customer_id}",
        )
        PAYMENTS_STARTED.labels(kind.value).inc()
    except WorkflowAlreadyStartedError:
        pass  # the first attempt of this request started it
    except RPCError as exc:
        raise ServiceUnavailable(f"could not start the payment workflow: {exc}") from exc
    return payment_from_row(row)


def as_routed(
    workflow_input: Any, routing: dict[str, Any] | None, recorded: dict[str, Any] | None
) -> Any:
    """The saga's input with the providers in the order the payment recorded: the rates may
    have moved since a first attempt of the same request decided it."""
    if routing is None or recorded is None or recorded == routing:
        return workflow_input
    providers = [candidate["id"] for candidate in recorded["candidates"]]
    return dataclasses.replace(workflow_input, providers=providers)


def payment_from_row(row: PaymentRow) -> Payment:
    return Payment.model_validate(row, from_attributes=True)


def saga_timings(settings: Settings) -> SagaTimings:
    return SagaTimings(
        provider_attempts=settings.provider_attempts,
        webhook_wait_seconds=settings.webhook_wait_seconds,
        poll_interval_seconds=settings.poll_interval_seconds,
        poll_interval_max_seconds=settings.poll_interval_max_seconds,
        requires_intervention_after_seconds=settings.requires_intervention_after_seconds,
        provider_call_seconds=settings.psp_timeout_seconds + 5,
        authentication_timeout_seconds=settings.authentication_timeout_seconds,
    )


def signed_decision(svc: Services, workflow_id: str, handler: str, decision: Decision) -> Decision:
    """The decision with the API's token: a saga takes no money decision without it, so that
    reaching Temporal is not enough to make one (domain.decisions, activities.decision_guard)."""
    return signed(svc.settings.decision_signing_keys, workflow_id, handler, decision)


def raise_if_not_signed(exc: WorkflowUpdateFailedError) -> None:
    """A saga refused the API's own token: the workers do not hold the API's signing key."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type == failures.DECISION_NOT_SIGNED:
        raise ServiceUnavailable(
            "the workers refused this API's decision token: give every worker the API's"
            " PAYSAGA_DECISION_SIGNING_KEYS (rotate workers first)"
        ) from exc
