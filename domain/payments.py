"""Payments as the public contract names them: kinds, statuses, failure codes, workflow inputs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.merchants import DEV_MERCHANT_ID


class PaymentKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"


# The deposit saga's workflow type. `Deposit` (workflows/legacy/) ran the deposits started before it.
DEPOSIT_WORKFLOW = "Deposit.v2"


class PaymentStatus(StrEnum):
    PROCESSING = "processing"
    # The provider waits for the customer (3-D Secure, the bank's approval): see `next_action`.
    REQUIRES_ACTION = "requires_action"
    REQUIRES_REVIEW = "requires_review"
    # The outcome could not be resolved automatically in time: an operator resolves it.
    REQUIRES_INTERVENTION = "requires_intervention"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED)


class FailureCode(StrEnum):
    KYC_REJECTED = "kyc_rejected"
    SANCTIONS_HIT = "sanctions_hit"
    RISK_DECLINED = "risk_declined"
    PROVIDER_DECLINED = "provider_declined"
    PROVIDER_REJECTED = "provider_rejected"  # the provider refused the request as invalid
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    REVIEW_REJECTED = "review_rejected"
    QUOTE_EXPIRED = "quote_expired"
    CREDIT_FAILED = "credit_failed"
    RESOLVED_BY_OPERATOR = "resolved_by_operator"
    # The customer failed the provider's authentication (3-D Secure, the bank's approval).
    AUTHENTICATION_FAILED = "authentication_failed"
    # The customer did not complete the authentication in time; it was cancelled at the provider.
    AUTHENTICATION_ABANDONED = "authentication_abandoned"
    # The customer owes the merchant (a chargeback's receivable): no withdrawal until repaid.
    CUSTOMER_IN_DEBT = "customer_in_debt"
    # A step failed in a way the saga had no plan for; everything before it was undone.
    INTERNAL_ERROR = "internal_error"
    # The payment's workflow never started (Temporal down, the client never retried).
    SAGA_NOT_STARTED = "saga_not_started"


ID_PREFIXES: dict[PaymentKind, str] = {
    PaymentKind.DEPOSIT: "dep_",
    PaymentKind.WITHDRAWAL: "wd_",
    PaymentKind.TRANSFER: "tr_",
}


@dataclass
class SagaTimings:
    """Waits, retry budgets and notifications of a saga, fixed at its start from the settings."""

    provider_attempts: int = 3
    webhook_wait_seconds: float = 30.0
    poll_interval_seconds: float = 2.0
    provider_call_seconds: float = 15.0  # one provider HTTP call, its client timeout included
    # Polling an unknown outcome backs off up to this interval, with no overall deadline.
    poll_interval_max_seconds: float = 600.0
    # An outcome still unknown this long after the call parks the payment for an operator.
    requires_intervention_after_seconds: float = 86_400.0
    # How long a charge waits for its customer's authentication before it is abandoned.
    authentication_timeout_seconds: float = 900.0


@dataclass
class DepositInput:
    """What the deposit saga needs; the payment id is also the workflow id."""

    payment_id: str
    customer_id: str
    amount: int
    currency: str
    payment_method: str
    providers: list[str]  # in order of preference: fail over only when one certainly did not charge
    timings: SagaTimings
    merchant_id: str = DEV_MERCHANT_ID  # default: histories recorded before merchants existed
    # Where the customer comes back after an authentication the provider asks for ("": none given).
    return_url: str = ""


@dataclass
class ProviderEventSignal:
    """A verified provider webhook, as delivered to the saga waiting for it."""

    event_id: str
    provider: str
    operation_kind: str
    idempotency_key: str
    status: str
    sequence: int
    decline_code: str | None = None
    operation_id: str | None = None
    # What the provider says it moved: an event is taken only if it matches the call.
    amount: int | None = None
    currency: str | None = None
    # The API's HMAC over the decision (domain.decisions): a saga takes no decision without it.
    token: str = ""


@dataclass
class PaymentState:
    """A saga's answer to the `state` query: what the API shows while it runs."""

    status: PaymentStatus
    provider: str | None = None
    failure_code: str | None = None


@dataclass
class WithdrawalInput:
    """What the withdrawal saga needs; the payment id is also the workflow id."""

    payment_id: str
    customer_id: str
    amount: int
    currency: str
    destination: str
    providers: list[str]  # payout routing, in order of preference
    timings: SagaTimings
    review_deadline_seconds: float = 86_400.0
    merchant_id: str = DEV_MERCHANT_ID  # default: histories recorded before merchants existed


@dataclass
class ReviewDecision:
    """An operator's decision on a payment in `requires_review`."""

    decision: str  # approve or reject
    reason: str | None = None
    reviewer: str | None = None
    # The API's HMAC over the decision (domain.decisions): a saga takes no decision without it.
    token: str = ""


@dataclass
class RecordedStatus:
    """The payment row after a status write: a final status already there is never replaced."""

    status: str
    failure_code: str | None = None


@dataclass
class ResolveDecision:
    """An operator's resolution of a payment in `requires_intervention`, after checking the provider."""

    outcome: str  # succeeded or failed
    reason: str | None = None
    operator: str | None = None
    # The API's HMAC over the decision (domain.decisions): a saga takes no decision without it.
    token: str = ""


@dataclass
class Beneficiary:
    """Who receives a transfer: a customer's wallet, or an external account paid out."""

    name: str
    country: str
    customer_id: str | None = None
    account: str | None = None


@dataclass
class TransferInput:
    """What the transfer saga needs: the locked quote and the beneficiary."""

    payment_id: str
    customer_id: str
    quote_id: str
    source_currency: str
    target_currency: str
    source_amount: int  # fee included
    fee: int
    target_amount: int
    rate: str
    expires_at: str  # ISO 8601
    beneficiary: Beneficiary
    house_owner_id: str
    providers: list[str]
    timings: SagaTimings
    review_deadline_seconds: float = 86_400.0
    merchant_id: str = DEV_MERCHANT_ID  # default: histories recorded before merchants existed
