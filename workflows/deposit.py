"""The deposit saga: KYC, fraud, charge at a provider, await its outcome, credit the wallet.

Workflow type `Deposit.v2`: the type `Deposit` before it (workflows/legacy/deposit_v1.py) took
its receivable split and its credit's reversal behind patches, and wrote the provider and the
risk decision each on its own; this one always does the former and writes the latter with the
next status change. KYC and the fraud rules are one local step, the credit and `succeeded`
another: a charge that answers at once takes two workflow tasks, two local steps and one search
attribute upsert (README, "Benchmark").
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from activities import providers as psp
    from activities.ledger import PostTransactionInput
    from activities.risk import RiskInput
    from domain.payments import (
        DEPOSIT_WORKFLOW,
        DepositInput,
        FailureCode,
        PaymentState,
        PaymentStatus,
        SagaTimings,
    )
    from ledger.models import AccountKind, LineSpec, Split
    from providers.adapter import CustomerAuthentication
    from providers.base import AUTHENTICATION_FAILED, Outcome, ProviderResult
    from workflows.saga import (
        STEP_FAILED,
        PaymentSaga,
        ProviderOperation,
        clear_end,
        error_type,
        provider_call,
        provider_queue,
    )


# The deposit's shape since it waits for a customer's authentication (README, "Changing a saga").
CUSTOMER_AUTHENTICATION = "customer-authentication"
AUTHENTICATION_REASONS: dict[str, str] = {
    FailureCode.AUTHENTICATION_FAILED: "the customer failed the provider's authentication",
    FailureCode.AUTHENTICATION_ABANDONED: "no authentication in time; cancelled at the provider",
}


def provider_step(timings: SagaTimings, provider: str) -> dict[str, Any]:
    """Options of a provider call that must get an answer: retried with backoff for as long as
    it takes (each attempt is harmless to repeat), unless the provider rejects it."""
    return {
        "task_queue": provider_queue(provider),
        "start_to_close_timeout": timedelta(seconds=timings.provider_call_seconds),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=timings.poll_interval_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=timings.poll_interval_max_seconds),
            non_retryable_error_types=[failures.PROVIDER_REJECTED],
        ),
    }


@workflow.defn(name=DEPOSIT_WORKFLOW)
class DepositWorkflow(PaymentSaga):
    """Money in: the wallet is credited exactly once, and only for a charge that succeeded.

    Point of no return: the charge request is sent. Before it a cancel ends `canceled`; after it
    the saga resolves the charge's outcome (webhook, polling, or an operator) and books it. A
    charge that took money without a credit is refunded; a refund the provider declines parks
    the payment in `requires_intervention`, where the operator's `failed` sends a new refund.

    Customer authentication (3-D Secure, the bank's approval; patch `customer-authentication`):
    a charge that answers it waits for the customer reopens the cancel. While `requires_action`
    no money can move without the customer, so a cancel (API or Temporal UI) is taken: the
    pending authorization is cancelled at the provider, a success that beat it is refunded, and
    the payment ends `canceled`. The point of no return comes back once the provider's outcome
    is known (webhook or poll): authenticated, the charge completes and the wallet is credited;
    failed, the payment fails `authentication_failed`. With no outcome in
    `authentication_timeout_seconds`, the authorization is cancelled at the provider (a late
    success refunded, never credited) and the payment fails `authentication_abandoned`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._refunds_declined = 0  # each new refund request has a key of its own
        self._customer_waiting = False  # the charge waits for its customer's authentication

    batch_status_writes = True

    @workflow.run
    @clear_end
    async def run(self, deposit: DepositInput) -> PaymentState:
        charge = ProviderOperation(f"{deposit.payment_id}:charge", deposit.amount, deposit.currency)
        # Reset after an earlier run sent the charge: its screening stands (asked again, it could
        # refuse a customer already charged, and credited).
        resumed = self.is_reset_run() and await self.local_step(
            psp.ProviderActivities.was_sent, charge.idempotency_key
        )
        screening = RiskInput(
            deposit.payment_id, deposit.customer_id, "deposit", deposit.amount, deposit.currency
        )
        if not resumed and (refusal := await self.screen(screening)) is not None:
            return await self.fail(*refusal)

        # Registered before the charge: a charge can succeed and fail to report it.
        for provider in deposit.providers:
            self.compensations.add(functools.partial(self._refund_if_charged, deposit, provider))

        def charge_at(provider: str) -> Awaitable[ProviderResult]:
            return workflow.execute_activity_method(
                psp.ProviderActivities.charge,
                psp.ChargeInput(
                    provider,
                    charge.idempotency_key,
                    deposit.payment_id,
                    deposit.amount,
                    deposit.currency,
                    deposit.payment_method,
                ),
                **provider_call(deposit.timings, provider),
            )

        self.point_of_no_return()
        answer = await self.with_failover(deposit.providers, charge_at)
        if answer.requires_action and workflow.patched(CUSTOMER_AUTHENTICATION):
            provider = answer.provider
            outcome, failure_code = await self.await_customer(deposit, provider, charge)
            if failure_code == FailureCode.AUTHENTICATION_ABANDONED:
                # Cancelled at the provider first; a success that beat it is refunded.
                await self.compensations.run()
            if failure_code is not None:
                return await self.fail(failure_code, AUTHENTICATION_REASONS[failure_code])
        else:
            provider, outcome = await self.outcome_of(answer, charge_at, charge)
        if outcome != Outcome.succeeded:
            if self._resolution is not None and workflow.patched("refund-charge-resolved-failed"):
                # An operator's `failed` while the charge's outcome was unknown: the provider
                # may still take the money. The refund waits for the charge's final word.
                await self.compensations.run()
            return await self.fail(*self.failure_of(outcome))

        credit_key = f"{deposit.payment_id}:credit"
        # Undone only if an operator later resolves the payment `failed` (e.g. the final status
        # write failed for good): the refund must not leave the credit behind.
        self.compensations.add(functools.partial(self.reverse_posting, credit_key, "credit"))
        # Money rule 3: a customer in debt (a chargeback's receivable) repays it first; the rest
        # reaches the wallet, in the same ledger transaction.
        credit = PostTransactionInput(
            credit_key,
            [
                LineSpec(
                    deposit.merchant_id,
                    provider,
                    AccountKind.provider_clearing,
                    deposit.currency,
                    -deposit.amount,
                )
            ],
            f"deposit {deposit.payment_id}",
            split=Split(
                deposit.merchant_id,
                deposit.currency,
                deposit.amount,
                deposit.customer_id,
                AccountKind.customer_receivable,
                deposit.customer_id,
                AccountKind.customer_wallet,
            ),
        )
        try:  # the credit and `succeeded`, in one local step
            return await self.set_status(PaymentStatus.SUCCEEDED, posting=credit)
        except STEP_FAILED as err:
            if error_type(err) != failures.POSTING_REFUSED:
                raise  # unplanned: credited or not, an operator decides (`requires_intervention`)
            # The ledger refused the credit (nothing was posted): give the money back.
            await self.compensations.run()
            return await self.fail(FailureCode.CREDIT_FAILED, str(err.cause or err))

    # -- customer authentication ----------------------------------------------------------------

    async def await_customer(
        self, deposit: DepositInput, provider: str, charge: ProviderOperation
    ) -> tuple[Outcome, str | None]:
        """Wait in `requires_action` for the provider's outcome of the customer's authentication.

        Returns the charge's outcome and, if the payment must fail for the authentication, its
        failure code: `authentication_failed`, or `authentication_abandoned` (no outcome in
        time: the caller cancels at the provider). A cancel meanwhile interrupts the wait.
        """
        self._customer_waiting = True
        self.compensations.add(functools.partial(self._withdraw_authorization, provider, charge))
        self.cancellable_again()
        authentication: CustomerAuthentication = await workflow.execute_activity_method(
            psp.ProviderActivities.authenticate,
            psp.AuthenticateInput(provider, charge.idempotency_key, deposit.return_url),
            **provider_step(deposit.timings, provider),
        )
        if authentication.status == "required" and authentication.url:
            await self.set_status(
                PaymentStatus.REQUIRES_ACTION,
                provider=provider,
                next_action={
                    "type": "redirect_to_url",
                    "redirect_to_url": {
                        "url": authentication.url,
                        "return_url": deposit.return_url or None,
                    },
                },
            )
        else:
            await self.set_provider(provider)
        timeout = timedelta(seconds=deposit.timings.authentication_timeout_seconds)
        final = await self._customer_outcome(provider, charge, workflow.now() + timeout)
        self.point_of_no_return()  # a cancel accepted meanwhile is honoured here
        if final is None:  # still waiting: the caller's compensations cancel it at the provider
            return Outcome.declined, FailureCode.AUTHENTICATION_ABANDONED
        self._customer_waiting = False
        outcome, decline_code = final
        if outcome == Outcome.declined and decline_code == AUTHENTICATION_FAILED:
            return outcome, FailureCode.AUTHENTICATION_FAILED
        return outcome, None

    async def _customer_outcome(
        self, provider: str, charge: ProviderOperation, deadline: datetime
    ) -> tuple[Outcome, str | None] | None:
        """The charge's final outcome and decline code, by webhook or else by polling; None if
        neither came by the deadline."""

        def got_event() -> bool:
            return self.final_event(provider, charge) is not None

        async def wait_until(done: Callable[[], bool], longest: timedelta) -> None:
            wait = min(longest, deadline - workflow.now())
            if wait > timedelta(0) and not done():
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(done, timeout=wait)

        await wait_until(got_event, timedelta(seconds=self._timings.webhook_wait_seconds))
        polled: ProviderResult | None = None
        if not got_event() and workflow.now() < deadline:
            poll = workflow.start_activity_method(
                psp.ProviderActivities.final_status,
                psp.StatusInput(provider, charge.idempotency_key, record_expected=True),
                task_queue=provider_queue(provider),
                start_to_close_timeout=timedelta(seconds=self._timings.provider_call_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=self._timings.poll_interval_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=self._timings.poll_interval_max_seconds),
                ),
            )
            try:
                await wait_until(lambda: got_event() or poll.done(), deadline - workflow.now())
            finally:
                if not poll.done():
                    poll.cancel()  # the webhook came first, the deadline passed, or a cancel
            if poll.done() and not poll.cancelled() and poll.exception() is None:
                polled = poll.result()
            elif poll.done() and not poll.cancelled():
                # The status cannot be read at all: only the webhook can still tell, in time.
                workflow.logger.error("status of %s unreadable: %s", provider, poll.exception())
                await wait_until(got_event, deadline - workflow.now())
        event = self.final_event(provider, charge)
        if event is not None:
            return Outcome(event.status), event.decline_code
        if polled is not None:
            return polled.outcome, polled.decline_code
        return None

    async def _withdraw_authorization(self, provider: str, charge: ProviderOperation) -> None:
        """Compensation of a charge waiting for its customer: cancel it at the provider, unless
        the saga already knows its outcome (then the refund, if any, undoes it)."""
        if not self._customer_waiting:
            return
        await workflow.execute_activity_method(
            psp.ProviderActivities.cancel_authorization,
            psp.StatusInput(provider, charge.idempotency_key),
            **provider_step(self._timings, provider),
        )

    async def _refund_if_charged(self, deposit: DepositInput, provider: str) -> None:
        """Compensation of a charge: refund it at the provider if (and only if) it took money.

        A declined refund fails the compensation (the payment is parked for an operator); the
        next attempt, on the operator's `failed`, is a new refund request with a key of its own.
        """
        key = f"{deposit.payment_id}:refund"
        if self._refunds_declined:
            key = f"{key}-{self._refunds_declined + 1}"
        try:
            await self._refund_charge(deposit, provider, key)
        except STEP_FAILED as err:
            if error_type(err) == failures.REFUND_DECLINED:
                self._refunds_declined += 1
            raise

    async def _refund_charge(self, deposit: DepositInput, provider: str, key: str) -> None:
        await workflow.execute_activity_method(
            psp.ProviderActivities.refund_charge,
            psp.RefundInput(
                provider,
                key,
                deposit.payment_id,
                f"{deposit.payment_id}:charge",
                deposit.amount,
                deposit.currency,
            ),
            task_queue=provider_queue(provider),
            start_to_close_timeout=timedelta(seconds=deposit.timings.provider_call_seconds),
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(seconds=deposit.timings.poll_interval_max_seconds),
                non_retryable_error_types=[failures.PROVIDER_REJECTED],
            ),
        )
