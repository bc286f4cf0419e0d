"""Disputes (chargebacks) as the public contract names them: statuses, the saga's input and
signals, what the merchant answers. Plain dataclasses, safe in workflows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from domain.payments import SagaTimings

WORKFLOW_NAME = "Dispute"  # the Dispute saga's workflow type


class DisputeStatus(StrEnum):
    """A dispute's status as the API shows it: the provider's, plus `requires_intervention`.

    `needs_response` (the merchant may submit evidence or accept), `under_review` (evidence in,
    the network decides), then `won` or `lost` for good. `requires_intervention`: a step failed in
    a way the saga has no plan for; it waits for an operator (see README, Disputes).
    """

    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    REQUIRES_INTERVENTION = "requires_intervention"
    WON = "won"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self in (DisputeStatus.WON, DisputeStatus.LOST)

    @property
    def rank(self) -> int:
        """The provider's order of statuses: a dispute never moves to a lower rank."""
        return {DisputeStatus.NEEDS_RESPONSE: 0, DisputeStatus.UNDER_REVIEW: 1}.get(self, 2)


def dispute_id_for(provider: str, provider_dispute_id: str) -> str:
    """The dispute's id (and its workflow's), the same from whichever of its events comes first."""
    digest = hashlib.sha256(f"{provider}:{provider_dispute_id}".encode()).hexdigest()
    return f"dsp_{digest[:24]}"


@dataclass
class DisputeEventSignal:
    """A verified provider dispute event, as delivered to the dispute's saga.

    `status` is the dispute's at the provider when the event was made (`needs_response` for
    `dispute.created`, `won` or `lost` for the verdicts); a higher `sequence` is newer.
    """

    event_id: str
    type: str
    sequence: int
    status: str
    amount: int
    currency: str
    fee: int
    reason: str
    evidence_due_by: str  # ISO 8601 with offset
    # The API's HMAC over the decision (domain.decisions): a saga takes no decision without it.
    token: str = ""


@dataclass
class DisputeInput:
    """What the Dispute saga needs: the disputed deposit and the provider's dispute."""

    dispute_id: str
    merchant_id: str
    payment_id: str  # the disputed deposit
    customer_id: str
    currency: str  # the deposit's
    provider: str  # the provider that took the charge, and reports the dispute
    provider_dispute_id: str
    house_owner_id: str  # owner of the merchant's chargeback-fee expense account
    timings: SagaTimings


@dataclass
class DisputeAnswer:
    """The merchant's answer to an open dispute: `evidence` (with its text) or `accept`."""

    action: str
    text: str = ""
    operator: str | None = None
    # The API's HMAC over the decision (domain.decisions): a saga takes no decision without it.
    token: str = ""


@dataclass
class DisputeView:
    """The saga's answer to the `state` query and to the merchant's answer."""

    status: DisputeStatus
    receivable: int = 0
