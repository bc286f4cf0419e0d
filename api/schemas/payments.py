"""Payments (deposits, withdrawals, cross-border transfers with their FX quotes), their refunds
and their disputes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.codes import (
    DisputeStatusName,
    FailureCode,
    PaymentKind,
    PaymentStatus,
    RefundStatusName,
)
from api.schemas.common import (
    HTTP_URL_PATTERN,
    Currency,
    Metadata,
    MinorUnits,
    StrictBody,
    _supported,
    _usable_url,
)


class DepositCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    amount: int = MinorUnits
    currency: str = Currency
    payment_method: str = Field(min_length=1, max_length=64, examples=["pm_ok"])
    provider: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        examples=["sandbox-cards"],
        description="a provider account's id or name (`GET /v1/providers`) to charge at, and no"
        " other; default: routing over the merchant's accounts",
    )
    return_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        examples=["https://shop.example/deposits/done"],
        description="where the customer comes back after an authentication the provider asks"
        " for (3-D Secure, the bank's approval); its query gains `payment_id`. https in"
        " production (http in development); echoed in `next_action`",
    )
    metadata: Metadata = Field(default_factory=dict)

    _currency = field_validator("currency")(_supported)

    @field_validator("return_url")
    @classmethod
    def return_url_parses(cls, url: str | None) -> str | None:
        return _usable_url(url, "return_url")


class RoutingCandidate(BaseModel):
    id: str = Field(description="the provider account")
    priority: int = Field(description="its place in the merchant's priority order")


class PaymentRouting(BaseModel):
    """Why the payment went where it did, decided when it was created."""

    reason: Literal["requested", "priority", "success_rate", "exploration"] = Field(
        description="why the first candidate is first: the merchant named it (`requested`), its"
        " priority (`priority`), an account before it had an authorization rate well below a"
        " peer's and was moved later (`success_rate`), or a random eligible account was tried"
        " first to keep every rate known (`exploration`)"
    )
    method: str | None = Field(
        description="the payment method family the rates are of (`card`, `bank`)",
        examples=["card"],
    )
    candidates: list[RoutingCandidate] = Field(
        description="the accounts in the order they are tried (failover only when one certainly"
        " did not process the payment)"
    )
    rates: dict[str, float] = Field(
        description="recent authorization rates (approved / approved + declined) by account, of"
        " the accounts with enough attempts to be judged"
    )


class RedirectToUrl(BaseModel):
    url: str = Field(description="the provider's page where the customer authenticates")
    return_url: str | None = Field(
        description="where the provider sends the customer back (the deposit's `return_url`)"
    )


class NextAction(BaseModel):
    """What the customer must do for a payment in `requires_action`."""

    type: Literal["redirect_to_url"]
    redirect_to_url: RedirectToUrl


class Payment(BaseModel):
    # Every field is in every answer: the document says so (a client need not test for it).
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: str
    kind: PaymentKind
    status: PaymentStatus
    customer_id: str
    amount: int
    currency: str
    provider: str | None
    failure_code: FailureCode | None
    failure_reason: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    routing: PaymentRouting | None = Field(
        default=None,
        description="why it went to its providers in that order (deposits; null for withdrawals"
        " and transfers, which follow the priority order)",
    )
    next_action: NextAction | None = Field(
        default=None,
        description="while `requires_action`: send the customer to `redirect_to_url.url`; the"
        " provider's outcome then moves the payment on",
    )
    review_reasons: list[str] | None = Field(
        default=None,
        description="while or after `requires_review`: the rules that sent it there"
        " (`large_amount`, `low_wagering`, `structuring`, `edd_required`)",
    )
    created_at: datetime
    updated_at: datetime


class PaymentList(BaseModel):
    data: list[Payment]
    has_more: bool


class WithdrawalCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    amount: int = MinorUnits
    currency: str = Currency
    destination: str = Field(min_length=1, max_length=128, examples=["pm_ok"])
    metadata: Metadata = Field(default_factory=dict)

    _currency = field_validator("currency")(_supported)


class ReviewCreate(StrictBody):
    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=500)


class ResolveCreate(StrictBody):
    outcome: Literal["succeeded", "failed"]
    reason: str | None = Field(default=None, max_length=500)


class QuoteCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    source_currency: str = Currency
    target_currency: str = Currency
    source_amount: int = MinorUnits
    expires_in_seconds: int | None = Field(
        default=None, ge=1, le=3600, description="shorter than the default validity if given"
    )

    _source = field_validator("source_currency")(_supported)
    _target = field_validator("target_currency")(_supported)


class Quote(BaseModel):
    id: str
    customer_id: str
    source_currency: str
    target_currency: str
    rate: str = Field(description="decimal string: target major units per source major unit")
    source_amount: int
    fee: int = Field(description="minor units of the source currency, included in source_amount")
    target_amount: int
    expires_at: datetime
    used: bool


class InternalBeneficiary(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)


class ExternalBeneficiary(StrictBody):
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    account: str = Field(min_length=1, max_length=128, examples=["pm_ok"])


class TransferCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    quote_id: str = Field(min_length=1, max_length=64)
    beneficiary: InternalBeneficiary | ExternalBeneficiary
    metadata: Metadata = Field(default_factory=dict)


class RefundCreate(StrictBody):
    """A refund of (part of) a succeeded deposit."""

    amount: int | None = Field(
        default=None,
        gt=0,
        le=10**15,
        strict=True,
        description="integer amount in minor units; default: what is left to refund",
    )
    reason: str | None = Field(default=None, max_length=500)


class Refund(BaseModel):
    """A refund; its id is its Temporal workflow id. `failure_code` `canceled`: canceled from
    the Temporal UI before the refund was sent to the provider."""

    id: str
    payment_id: str
    amount: int
    currency: str
    status: RefundStatusName
    failure_code: FailureCode | None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


class RefundList(BaseModel):
    data: list[Refund]
    has_more: bool


class Dispute(BaseModel):
    """A chargeback of a deposit; its id is its Temporal workflow id. `receivable`: the part
    of `amount` the customer's wallet could not cover, booked as the customer's debt."""

    id: str
    payment_id: str
    customer_id: str
    amount: int
    currency: str
    fee: int
    reason: str
    status: DisputeStatusName
    evidence_due_by: datetime
    receivable: int
    created_at: datetime
    updated_at: datetime


class DisputeList(BaseModel):
    data: list[Dispute]
    has_more: bool


class DisputeEvidence(StrictBody):
    """The merchant's evidence against a dispute, forwarded to the provider."""

    text: str = Field(min_length=1, max_length=20_000)
