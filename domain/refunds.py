"""Refunds as the public contract names them: statuses, the Refund saga's input and its keys."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.payments import PaymentStatus, SagaTimings

REFUND_ID_PREFIX = "ref_"
WORKFLOW_NAME = "Refund"
# The PaymentKind search attribute of a Refund workflow, beside deposit, withdrawal, transfer.
SEARCH_KIND = "refund"


class RefundStatus(StrEnum):
    PROCESSING = "processing"
    # The provider's outcome stayed unknown too long: an operator resolves it (money rule 7).
    REQUIRES_INTERVENTION = "requires_intervention"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (RefundStatus.SUCCEEDED, RefundStatus.FAILED)


# The contract's refund has no `canceled` status: a refund canceled before its provider call (from
# the Temporal UI) shows `failed` with this failure code; inside the saga it is `canceled`.
CANCELED = "canceled"


def row_status(saga_status: str, failure_code: str | None) -> tuple[str, str | None]:
    """The refund row's (status, failure code) for a status the saga sets."""
    if saga_status == PaymentStatus.CANCELED:
        return RefundStatus.FAILED.value, CANCELED
    return RefundStatus(saga_status).value, failure_code


def saga_status(status: str, failure_code: str | None) -> tuple[str, str | None]:
    """The saga's (status, failure code) for a refund row's: `row_status` undone."""
    if status == RefundStatus.FAILED and failure_code == CANCELED:
        return PaymentStatus.CANCELED.value, None
    return status, failure_code


def refund_key_prefix(payment_id: str, refund_id: str) -> str:
    """What every ledger and provider key of a refund starts with: the deposit's id first, so
    that reconciliation finds the refund's clearing entries under the deposit (as the provider's
    settlement lines name it), then the refund's own id."""
    return f"{payment_id}:{refund_id}"


def refund_of_key(idempotency_key: str) -> str | None:
    """The refund id in one of a refund's keys (`<deposit id>:<refund id>:<step>`), else None:
    the provider's events of a refund name the deposit, its key names the refund's saga."""
    parts = idempotency_key.split(":")
    if len(parts) > 2 and parts[1].startswith(REFUND_ID_PREFIX):
        return parts[1]
    return None


@dataclass
class RefundInput:
    """What the Refund saga needs; the refund id is also the workflow id."""

    refund_id: str
    payment_id: str  # the refunded deposit
    merchant_id: str
    customer_id: str
    amount: int
    currency: str
    provider: str  # the provider that took the deposit's charge
    charge_idempotency_key: str  # the charge's key at that provider
    timings: SagaTimings

    @property
    def key_prefix(self) -> str:
        return refund_key_prefix(self.payment_id, self.refund_id)
