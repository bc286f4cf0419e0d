"""The provider interface's types: outcomes and their classification, results, disputes, errors.

Adapter authors start at `providers.adapter`, which re-exports what they need from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from domain.errors import PaysagaError


class Answer(StrEnum):
    """How a provider's answer is classified: what failover, breakers and `requires_intervention`
    may do after it.

    | answer      | money may have moved | fail over to another provider | counts against health |
    |-------------|----------------------|-------------------------------|-----------------------|
    | succeeded   | yes                  | no                            | no                    |
    | pending     | yes (outcome later)  | no                            | no                    |
    | declined    | no (final)           | no: the customer's answer     | no                    |
    | rejected    | no (final)           | no: the request is invalid    | no                    |
    | unavailable | no (certainly)       | yes                           | yes                   |
    | unknown     | maybe: read `status` | never                         | yes                   |
    """

    succeeded = "succeeded"
    pending = "pending"
    declined = "declined"
    rejected = "rejected"
    unavailable = "unavailable"
    unknown = "unknown"

    @property
    def failover_safe(self) -> bool:
        """Whether the provider certainly did nothing, so another one may be asked instead."""
        return self == Answer.unavailable

    @property
    def may_have_landed(self) -> bool:
        """Whether money may have moved: the call's outcome must then be read, never re-sent
        elsewhere."""
        return self in (Answer.succeeded, Answer.pending, Answer.unknown)

    @property
    def is_health_failure(self) -> bool:
        """Whether it counts as a failure for the provider's circuit breaker: a decline or a
        rejection is an answer, a refusal or a time-out is not."""
        return self in (Answer.unavailable, Answer.unknown)


class Outcome(StrEnum):
    """What a provider call tells the saga about the money (its `answer` classifies it)."""

    succeeded = "succeeded"
    declined = "declined"
    pending = "pending"
    # Certainly not processed: safe to retry with the same key or to fail over.
    not_processed = "not_processed"
    # May have been processed: resolve by polling `status()`, never by calling again elsewhere.
    unknown = "unknown"
    # Refused as invalid (e.g. an unsupported destination): certainly not processed, and final.
    rejected = "rejected"

    @property
    def answer(self) -> Answer:
        """The classification failover and breakers act on (`not_processed` is `unavailable`)."""
        return Answer.unavailable if self == Outcome.not_processed else Answer(self.value)


@dataclass
class ProviderResult:
    """The answer of one provider call; JSON-friendly fields so Temporal activities return it."""

    provider: str
    outcome: Outcome
    operation_id: str | None = None
    decline_code: str | None = None
    detail: str | None = None
    # A `pending` charge that waits for the customer's authentication (`authenticate` gives the
    # redirect): 3-D Secure, the bank's approval.
    requires_action: bool = False


# The decline code of a charge whose customer failed (or never completed) the authentication:
# adapters translate their PSP's own code to it, and the deposit fails `authentication_failed`.
AUTHENTICATION_FAILED = "authentication_failed"


@dataclass
class SettlementLine:
    """One line of a provider's settlement report: money it says moved for a payment.

    `amount` is always positive (minor units); `kind` says which way the money went for the
    merchant, as `SETTLEMENT_DIRECTIONS` gives it:
    - `charge`: in (a deposit's charge);
    - `payout`, `refund`: out;
    - `dispute`: out, the disputed amount the provider withdrew when the dispute opened;
    - `dispute_fee`: out, the provider's fee for that dispute (kept whatever the verdict);
    - `dispute_reversal`: in, the disputed amount given back when the dispute is won.
    A dispute's lines carry the disputed payment's id as `reference` and the dispute's id as
    `operation_id` (its up to three lines share it).
    """

    kind: str  # one of SETTLEMENT_DIRECTIONS
    reference: str  # our payment id
    amount: int
    currency: str
    operation_id: str


# +1: money in for the merchant, -1: money out, per settlement line kind.
SETTLEMENT_DIRECTIONS = {
    "charge": 1,
    "payout": -1,
    "refund": -1,
    "dispute": -1,
    "dispute_fee": -1,
    "dispute_reversal": 1,
}


class DisputeStatus(StrEnum):
    """A dispute's status at the provider."""

    needs_response = "needs_response"  # waiting for the merchant's evidence or acceptance
    under_review = "under_review"  # evidence in; the network decides
    won = "won"  # the disputed amount comes back (the fee does not)
    lost = "lost"  # accepted, decided against the merchant, or unanswered by the due date

    @property
    def is_final(self) -> bool:
        """Whether the provider has closed the dispute."""
        return self in (DisputeStatus.won, DisputeStatus.lost)


@dataclass
class DisputeState:
    """A dispute as the provider shows it now; JSON-friendly so Temporal activities return it."""

    provider: str
    dispute_id: str
    reference: str  # our payment id (the disputed deposit)
    charge_idempotency_key: str
    status: DisputeStatus
    amount: int
    currency: str
    fee: int
    reason: str
    evidence_due_by: str  # ISO 8601, UTC
    evidence_submitted_at: str | None = None  # ISO 8601, UTC


class ProviderError(PaysagaError):
    """Base of everything a provider adapter raises that is not an `Outcome` (see domain.errors)."""


class ProviderRequestRejected(ProviderError):
    """The provider refused the request as invalid (4xx): retrying the same request cannot help."""

    def __init__(self, provider: str, status_code: int, code: str, message: str = "") -> None:
        # The provider's own message stays out of str(): it may quote the account or card it
        # refused, and str() reaches logs, histories and the payment's failure reason.
        super().__init__(f"{provider} rejected the request ({status_code} {code})")
        self.provider = provider
        self.status_code = status_code
        self.code = code
        self.message = message


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or did not answer properly (network, 5xx, 429).

    Raised by calls that have no `Outcome` to return (disputes, reports). A request may or may
    not have been processed: read the state back (`dispute_status`) before sending it again.
    """


class ProviderConfigurationError(ProviderError):
    """The provider is not configured (unknown name, or the PSP does not serve it)."""


class CapabilityAbsent(ProviderError):
    """The adapter does not offer this operation (authentication, payouts, disputes...): its
    `Capabilities` say so, and nothing was sent to the provider."""


class WebhookSignatureInvalid(ProviderError):
    """A webhook's signature header is malformed, wrong, or outside the timestamp tolerance."""


class InvalidEvent(ProviderError):
    """A webhook body that is not a well-formed provider event."""


class PaymentProvider(Protocol):
    """A PSP as the sagas see it; every call carries an idempotency key (payment id + step)."""

    @property
    def name(self) -> str: ...

    async def charge(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: int,
        currency: str,
        payment_method: str,
    ) -> ProviderResult: ...

    async def refund(
        self,
        *,
        idempotency_key: str,
        reference: str,
        charge_idempotency_key: str,
        amount: int,
        currency: str,
    ) -> ProviderResult: ...

    async def payout(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: int,
        currency: str,
        destination: str,
    ) -> ProviderResult: ...

    async def status(self, idempotency_key: str) -> ProviderResult: ...

    async def settlement_report(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[SettlementLine]:
        """The lines settled in (since, until]; no bound means from the start or up to now."""
        ...


class DisputeProvider(Protocol):
    """A PSP's dispute API, as the Dispute saga sees it.

    Errors: `ProviderRequestRejected` for a refusal (404 `dispute_not_found`, 409
    `dispute_not_open` when the dispute no longer needs a response), `ProviderUnavailable` for
    network trouble and server errors, `ProviderConfigurationError` for an unserved provider.
    """

    @property
    def name(self) -> str: ...

    async def submit_dispute_evidence(self, dispute_id: str, text: str) -> DisputeState:
        """Contest an open dispute: `under_review` until the provider's verdict."""
        ...

    async def accept_dispute(self, dispute_id: str) -> DisputeState:
        """Accept an open dispute: `lost` at once."""
        ...

    async def dispute_status(self, dispute_id: str) -> DisputeState:
        """The dispute's current state."""
        ...
