"""Payment-provider activities: charge, payout, refund and status, with safe retry semantics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar, cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import failures
from activities.provider_metrics import (
    BREAKER_STATE,
    BREAKER_STATE_VALUES,
    count_skipped,
    count_transition,
    observed,
    worker_meter,
)
from paysaga.observability.sdk_meter import gauge
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
from providers.health import ANSWERED, call_mark

if TYPE_CHECKING:  # workflows import this module: they need none of the SQL
    from paysaga.store.provider_health import Admission, ProviderBreakers, Recorded

T = TypeVar("T")

# ApplicationError types the sagas branch on (activities/failures.py).
NOT_PROCESSED = failures.PROVIDER_NOT_PROCESSED
OUTCOME_PENDING = failures.PROVIDER_OUTCOME_PENDING
REJECTED = failures.PROVIDER_REJECTED
# In the details of a NOT_PROCESSED failure: the account was skipped, open this long still; and
# whether the key had been sent there before and refused unprocessed (a resend that was made).
BREAKER_OPEN_SECONDS_LEFT = "breaker_open_seconds_left"
BREAKER_SKIPPED_AFTER_REFUSAL = "refused_here_before"

log = logging.getLogger(__name__)


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

    def __init__(
        self,
        providers: ProviderDirectory | Mapping[str, PaymentProvider],
        breakers: ProviderBreakers | None = None,
    ) -> None:
        self._providers = (
            providers
            if isinstance(providers, ProviderDirectory)
            else ProviderDirectory.of(providers)
        )
        self._breakers = breakers  # None: every call goes through, none is counted

    async def _provider(self, account_id: str) -> PaymentProvider:
        try:
            return await self._providers.get(account_id)
        except ProviderConfigurationError as exc:
            raise ApplicationError(
                str(exc), type=ProviderConfigurationError.__name__, non_retryable=True
            ) from None

    async def _send(
        self,
        account: str,
        operation: str,
        idempotency_key: str,
        call: Callable[[PaymentProvider], Awaitable[ProviderResult]],
    ) -> ProviderResult:
        """A keyed call (charge, payout, refund) through the account's breaker: a rejection is
        final, `not processed` raised (retry or fail over), `unknown` returned (poll)."""
        provider = await self._provider(account)
        with _rejections_final():
            result = await self._through_breaker(
                account, operation, idempotency_key, lambda: call(provider)
            )
        return _raise_if_not_processed(result)

    @activity.defn(name="provider.charge")
    async def charge(self, charge: ChargeInput) -> ProviderResult:
        """Charge once; `not processed` is raised (retry/fail over), `unknown` returned (poll)."""
        return await self._send(
            charge.provider,
            "charge",
            charge.idempotency_key,
            lambda provider: provider.charge(
                idempotency_key=charge.idempotency_key,
                reference=charge.reference,
                amount=charge.amount,
                currency=charge.currency,
                payment_method=charge.payment_method,
            ),
        )

    @activity.defn(name="provider.payout")
    async def payout(self, payout: PayoutInput) -> ProviderResult:
        """Pay out once; same outcome rules as a charge."""
        return await self._send(
            payout.provider,
            "payout",
            payout.idempotency_key,
            lambda provider: provider.payout(
                idempotency_key=payout.idempotency_key,
                reference=payout.reference,
                amount=payout.amount,
                currency=payout.currency,
                destination=payout.destination,
            ),
        )

    @activity.defn(name="provider.was_sent")
    async def was_sent(self, idempotency_key: str) -> bool:
        """Whether a keyed call was sent to a provider, from the breakers' records (a reset
        saga asks whether an earlier run of it sent its payout); False without breakers."""
        if self._breakers is None:
            return False
        return await self._breakers.sent_to(idempotency_key) is not None

    @activity.defn(name="provider.final_status")
    async def final_status(self, query: StatusInput) -> ProviderResult:
        """The operation's final outcome, or `not_processed` if the provider has no record of it.

        Raises (to be retried with backoff) while the outcome is pending or the status unknown.
        """
        provider = await self._provider(query.provider)
        result = await observed(
            query.provider, "status", lambda: provider.status(query.idempotency_key)
        )
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
        return await self._send(
            refund.provider,
            "refund",
            refund.idempotency_key,
            lambda provider: provider.refund(
                idempotency_key=refund.idempotency_key,
                reference=refund.reference,
                charge_idempotency_key=refund.charge_idempotency_key,
                amount=refund.amount,
                currency=refund.currency,
            ),
        )

    @activity.defn(name="provider.refund_charge")
    async def refund_charge(self, refund: RefundInput) -> ProviderResult | None:
        """Refund the charge if it succeeded; None if it never took money.

        The deposit saga's compensation. A declined refund is final for its request: it fails
        for good (`RefundDeclined`), and the saga parks the payment for an operator rather than
        retrying it forever. The Refund saga uses `refund`.
        """
        provider = await self._provider(refund.provider)
        charge = await observed(
            refund.provider, "status", lambda: provider.status(refund.charge_idempotency_key)
        )
        if charge.outcome in (Outcome.declined, Outcome.not_processed):
            return None
        if charge.outcome != Outcome.succeeded:
            raise ApplicationError(f"charge outcome still {charge.outcome}", type=OUTCOME_PENDING)
        probe = await self._compensation_admitted(refund.provider)
        with _rejections_final():
            result = await self._counted(
                refund.provider,
                "refund",
                probe,
                None,
                lambda: provider.refund(
                    idempotency_key=refund.idempotency_key,
                    reference=refund.reference,
                    charge_idempotency_key=refund.charge_idempotency_key,
                    amount=refund.amount,
                    currency=refund.currency,
                ),
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

    # -- circuit breakers (paysaga/store/provider_health.py) ------------------------------------

    async def _through_breaker(
        self,
        account: str,
        operation: str,
        idempotency_key: str,
        call: Callable[[], Awaitable[ProviderResult]],
    ) -> ProviderResult:
        """Make the call if the account's breaker lets it through, and count its outcome.

        A skipped call sends nothing and fails at once, non-retryable, as certainly not
        processed (failing over past it is safe): the breaker is open (the failure carries how
        long still, so that a saga that must wait, a payout or a refund, waits that long on a
        durable timer), or its key was sent to another account (where it must go). Skipping is
        decided against the key's record (`provider_calls`), never the attempt number: a key sent
        to this account before (a retry, a resend, a saga reset from the Temporal UI) may have
        landed, so it is sent again whatever the breaker says.
        """
        if self._breakers is None:
            return await observed(account, operation, call)
        admission = await self._admission(account, idempotency_key)
        if not admission.admitted:
            count_skipped(
                account, operation, "sent_elsewhere" if admission.sent_elsewhere else "open"
            )
            if admission.sent_elsewhere:
                raise ApplicationError(
                    f"{idempotency_key} was sent to {admission.sent_elsewhere}: not sent to {account}",
                    type=NOT_PROCESSED,
                    non_retryable=True,
                )
            raise ApplicationError(
                f"{account} is skipped: its circuit breaker is open",
                {
                    BREAKER_OPEN_SECONDS_LEFT: admission.seconds_left_open,
                    BREAKER_SKIPPED_AFTER_REFUSAL: admission.refused_here,
                },
                type=NOT_PROCESSED,
                non_retryable=True,
            )
        return await self._counted(account, operation, admission.probe, idempotency_key, call)

    async def _admission(self, account: str, idempotency_key: str) -> Admission:
        assert self._breakers is not None
        try:
            admission = await self._breakers.admit(account, idempotency_key)
        except Exception as exc:  # the database, before anything was sent: retried
            log.warning("breaker of %s unreadable, %s not sent: %r", account, idempotency_key, exc)
            raise ApplicationError(
                f"{account}'s circuit breaker could not be read: not sent", type=NOT_PROCESSED
            ) from exc
        if admission.turned_half_open:
            count_transition(account, "open", "half_open")
        return admission

    async def _compensation_admitted(self, account: str) -> bool:
        """A deposit's compensating refund asks the breaker too, but never fails over and must
        not be given up: while the breaker is open it is retried (by Temporal) once the time left
        open has passed, not before. Whether it goes as a probe."""
        if self._breakers is None:
            return False
        admission = await self._breakers.admit_unkeyed(account)
        if admission.turned_half_open:
            count_transition(account, "open", "half_open")
        if not admission.admitted:
            count_skipped(account, "refund", "open")
            left = admission.seconds_left_open
            raise ApplicationError(
                f"{account} is skipped: its circuit breaker is open; retried in {left:.0f} s",
                {BREAKER_OPEN_SECONDS_LEFT: left},
                type=NOT_PROCESSED,
                next_retry_delay=timedelta(seconds=left),
            )
        return admission.probe

    async def _counted(
        self,
        account: str,
        operation: str,
        probe: bool,
        idempotency_key: str | None,
        call: Callable[[], Awaitable[ProviderResult]],
    ) -> ProviderResult:
        """Make an admitted call; count its outcome in the breaker (a rejection is an answer)."""
        if self._breakers is None:
            return await observed(account, operation, call)
        try:
            result = await observed(account, operation, call)
        except ProviderRequestRejected:
            await self._record(account, ANSWERED, probe, None)
            raise
        refused = idempotency_key if result.outcome == Outcome.not_processed else None
        await self._record(account, call_mark(result.outcome), probe, refused)
        return result

    async def _record(self, account: str, mark: str, probe: bool, refused_key: str | None) -> None:
        """Count the outcome; a failure to count loses a count, never the call's answer."""
        assert self._breakers is not None
        try:
            recorded: Recorded = await self._breakers.record(
                account, mark, probe=probe, refused_key=refused_key
            )
        except Exception as exc:
            log.warning("outcome of a call to %s not counted: %r", account, exc)
            return
        if recorded.changed:
            count_transition(account, recorded.previous.value, recorded.state.value)
        gauge(
            worker_meter(),
            BREAKER_STATE,
            "Breaker state as this worker last saw it: 0 closed, 1 half-open, 2 open.",
        ).set(BREAKER_STATE_VALUES[recorded.state.value], {"provider_account": account})


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
