"""Payment-provider activities: charge, payout, refund and status, with safe retry semantics."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import failures
from providers.adapter import CustomerAuthentication, ProviderAdapter
from providers.base import (
    CapabilityAbsent,
    Outcome,
    PaymentProvider,
    ProviderConfigurationError,
    ProviderRequestRejected,
    ProviderResult,
)
from providers.directory import ProviderDirectory

# ApplicationError types the sagas branch on (activities/failures.py).
NOT_PROCESSED = failures.PROVIDER_NOT_PROCESSED
OUTCOME_PENDING = failures.PROVIDER_OUTCOME_PENDING
REJECTED = failures.PROVIDER_REJECTED


@dataclass
class ChargeInput:
    provider: str
    idempotency_key: str
    reference: str
    amount: int
    currency: str
    payment_method: str


@dataclass
class PayoutInput:
    provider: str
    idempotency_key: str
    reference: str
    amount: int
    currency: str
    destination: str


@dataclass
class StatusInput:
    provider: str
    idempotency_key: str
    # True once the call was sent again and again: "no record" then means "not yet", not "never".
    record_expected: bool = False


@dataclass
class AuthenticateInput:
    provider: str
    idempotency_key: str  # the charge's
    return_url: str


@dataclass
class RefundInput:
    provider: str
    idempotency_key: str
    reference: str
    charge_idempotency_key: str
    amount: int
    currency: str


class ProviderActivities:
    """Calls to the providers; every call carries the saga's idempotency key for its step."""

    def __init__(self, providers: ProviderDirectory | Mapping[str, PaymentProvider]) -> None:
        self._providers = (
            providers
            if isinstance(providers, ProviderDirectory)
            else ProviderDirectory.of(providers)
        )

    async def _provider(self, account_id: str) -> PaymentProvider:
        try:
            return await self._providers.get(account_id)
        except ProviderConfigurationError as exc:
            raise ApplicationError(
                str(exc), type=ProviderConfigurationError.__name__, non_retryable=True
            ) from None

    @activity.defn(name="provider.charge")
    async def charge(self, charge: ChargeInput) -> ProviderResult:
        """Charge once; `not processed` is raised (retry/fail over), `unknown` returned (poll)."""
        provider = await self._provider(charge.provider)
        with _rejections_final():
            result = await provider.charge(
                idempotency_key=charge.idempotency_key,
                reference=charge.reference,
                amount=charge.amount,
                currency=charge.currency,
                payment_method=charge.payment_method,
            )
        return _raise_if_not_processed(result)

    @activity.defn(name="provider.payout")
    async def payout(self, payout: PayoutInput) -> ProviderResult:
        """Pay out once; same outcome rules as a charge."""
        provider = await self._provider(payout.provider)
        with _rejections_final():
            result = await provider.payout(
                idempotency_key=payout.idempotency_key,
                reference=payout.reference,
                amount=payout.amount,
                currency=payout.currency,
                destination=payout.destination,
            )
        return _raise_if_not_processed(result)

    @activity.defn(name="provider.final_status")
    async def final_status(self, query: StatusInput) -> ProviderResult:
        """The operation's final outcome, or `not_processed` if the provider has no record of it.

        Raises (to be retried with backoff) while the outcome is pending or the status unknown.
        """
        provider = await self._provider(query.provider)
        result = await provider.status(query.idempotency_key)
        final = (Outcome.succeeded, Outcome.declined)
        if result.outcome in final or (
            result.outcome == Outcome.not_processed and not query.record_expected
        ):
            return result
        raise ApplicationError(
            f"{query.provider} has no final outcome for {query.idempotency_key} yet"
            f" ({result.outcome})",
            type=OUTCOME_PENDING,
        )

    @activity.defn(name="provider.refund")
    async def refund(self, refund: RefundInput) -> ProviderResult:
        """Refund (part of) a charge once (the Refund saga): a decline is final, `not processed`
        is raised (retry), `unknown` returned (poll); same outcome rules as a charge."""
        provider = await self._provider(refund.provider)
        with _rejections_final():
            result = await provider.refund(
                idempotency_key=refund.idempotency_key,
                reference=refund.reference,
                charge_idempotency_key=refund.charge_idempotency_key,
                amount=refund.amount,
                currency=refund.currency,
            )
        return _raise_if_not_processed(result)

    @activity.defn(name="provider.refund_charge")
    async def refund_charge(self, refund: RefundInput) -> ProviderResult | None:
        """Refund the charge if it succeeded; None if it never took money.

        The deposit saga's compensation. A declined refund is final for its request: it fails
        for good (`RefundDeclined`), and the saga parks the payment for an operator rather than
        retrying it forever. The Refund saga uses `refund`.
        """
        provider = await self._provider(refund.provider)
        charge = await provider.status(refund.charge_idempotency_key)
        if charge.outcome in (Outcome.declined, Outcome.not_processed):
            return None
        if charge.outcome != Outcome.succeeded:
            raise ApplicationError(f"charge outcome still {charge.outcome}", type=OUTCOME_PENDING)
        with _rejections_final():
            result = await provider.refund(
                idempotency_key=refund.idempotency_key,
                reference=refund.reference,
                charge_idempotency_key=refund.charge_idempotency_key,
                amount=refund.amount,
                currency=refund.currency,
            )
        if result.outcome == Outcome.declined:
            raise ApplicationError(
                f"{refund.provider} declined refund {refund.idempotency_key}",
                type=failures.REFUND_DECLINED,
                non_retryable=True,
            )
        if result.outcome not in (Outcome.succeeded, Outcome.pending):
            raise ApplicationError(f"refund {result.outcome}", type=OUTCOME_PENDING)
        return result

    @activity.defn(name="provider.authenticate")
    async def authenticate(self, request: AuthenticateInput) -> CustomerAuthentication:
        """Where to send the customer a charge waits for (or how its authentication ended)."""
        provider = cast(ProviderAdapter, await self._provider(request.provider))
        with _rejections_final():
            return await provider.authenticate(
                idempotency_key=request.idempotency_key, return_url=request.return_url
            )

    @activity.defn(name="provider.cancel_authorization")
    async def cancel_authorization(self, query: StatusInput) -> ProviderResult:
        """Withdraw a charge still waiting for its customer; the charge's state afterwards.

        Retried (same key: cancelling twice is harmless) while the provider answers nothing.
        """
        provider = cast(ProviderAdapter, await self._provider(query.provider))
        with _rejections_final():
            result = await provider.cancel_authorization(query.idempotency_key)
        if result.outcome == Outcome.unknown:
            raise ApplicationError(f"cancel of {query.idempotency_key}: no answer yet")
        return result


@contextlib.contextmanager
def _rejections_final() -> Iterator[None]:
    """A request the provider rejected as invalid fails for good: retrying it cannot help. So
    does one the adapter does not offer (nothing was sent)."""
    try:
        yield
    except ProviderRequestRejected as exc:
        raise ApplicationError(str(exc), exc.code, type=REJECTED, non_retryable=True) from exc
    except CapabilityAbsent as exc:
        raise ApplicationError(
            str(exc), "capability_absent", type=REJECTED, non_retryable=True
        ) from exc


def _raise_if_not_processed(result: ProviderResult) -> ProviderResult:
    if result.outcome == Outcome.not_processed:
        raise ApplicationError(
            f"{result.provider} did not process the request: {result.detail or 'unavailable'}",
            type=NOT_PROCESSED,
        )
    return result
