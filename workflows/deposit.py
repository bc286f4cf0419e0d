"""The deposit saga: KYC, fraud, charge at a provider, await its outcome, credit the wallet.

Workflow type `Deposit.v2`: the type `Deposit` before it (workflows/legacy/deposit_v1.py) took
its receivable split and its credit's reversal behind patches, and wrote the provider and the
risk decision each on its own; this one always does the former and writes the latter with the
next status change. KYC and the fraud rules are one local step, the credit and `succeeded`
another: a charge that answers at once takes two workflow tasks, two local steps and one search
attribute upsert (README, "Benchmark").
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from datetime import timedelta

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
    )
    from ledger.models import AccountKind, LineSpec, Split
    from providers.base import Outcome, ProviderResult
    from workflows.base import (
        STEP_FAILED,
        PaymentSaga,
        ProviderOperation,
        clear_end,
        error_type,
        provider_call,
        provider_queue,
    )


@workflow.defn(name=DEPOSIT_WORKFLOW)
class DepositWorkflow(PaymentSaga):
    """Money in: the wallet is credited exactly once, and only for a charge that succeeded.

    Point of no return: the charge request is sent. Before it a cancel ends `canceled`; after it
    the saga resolves the charge's outcome (webhook, polling, or an operator) and books it. A
    charge that took money without a credit is refunded; a refund the provider declines parks
    the payment in `requires_intervention`, where the operator's `failed` sends a new refund.
    """

    def __init__(self) -> None:
        super().__init__()
        self._refunds_declined = 0  # each new refund request has a key of its own

    batch_status_writes = True

    @workflow.run
    @clear_end
    async def run(self, deposit: DepositInput) -> PaymentState:
        screening = RiskInput(
            deposit.payment_id, deposit.customer_id, "deposit", deposit.amount, deposit.currency
        )
        if (refusal := await self.screen(screening)) is not None:
            return await self.fail(*refusal)

        charge = ProviderOperation(f"{deposit.payment_id}:charge", deposit.amount, deposit.currency)
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
        provider, outcome = await self.call_provider(deposit.providers, charge_at, charge)
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
