"""The provider interface: outcomes of a provider call, its result, and the errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from domain.errors import PaysagaError


class Outcome(StrEnum):
    """What a provider call tells the saga about the money."""

    succeeded = "succeeded"
    declined = "declined"
    pending = "pending"
    # Certainly not processed: safe to retry with the same key or to fail over.
    not_processed = "not_processed"
    # May have been processed: resolve by polling `status()`, never by calling again elsewhere.
    unknown = "unknown"
    # Refused as invalid (e.g. an unsupported destination): certainly not processed, and final.
    rejected = "rejected"


@dataclass
class ProviderResult:
    """The answer of one provider call; JSON-friendly fields so Temporal activities return it."""

    provider: str
    outcome: Outcome
    operation_id: str | None = None
    decline_code: str | None = None
    detail: str | None = None


@dataclass
class SettlementLine:
    """One line of a provider's settlement report: money it says moved for a payment."""

    kind: str  # charge, payout or refund
    reference: str  # our payment id
    amount: int
    currency: str
    operation_id: str


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


class ProviderConfigurationError(ProviderError):
    """The provider is not configured (unknown name, or the PSP does not serve it)."""


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
