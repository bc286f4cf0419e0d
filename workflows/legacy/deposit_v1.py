"""The deposit saga as it was until workflow type `Deposit.v2` replaced it: frozen.

Deposits started before then run on to their end here; new ones start as `Deposit.v2`
(workflows/deposit.py). Do not change this file: its recorded histories
(tests/histories/deposit_v1_*.json) must keep replaying. Delete it once no `Deposit` is open.
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
    from activities.ledger import LedgerActivities, PostTransactionInput
    from activities.risk import RiskInput
    from domain.payments import DepositInput, FailureCode, PaymentState, PaymentStatus
    from ledger.models import AccountKind, LineSpec, Split
    from providers.base import Outcome, ProviderResult
    from workflows.saga import (
        LOCAL_STEP,
        STEP_FAILED,
        PaymentSaga,
        ProviderOperation,
        clear_end,
        provider_call,
        provider_queue,
    )


@workflow.defn(name="Deposit")
class DepositV1Workflow(PaymentSaga):
    """Money in: the wallet is credited exactly once, and only for a charge that succeeded.

    Point of no return: the charge request is sent. Before it a cancel ends `canceled`; after it
    the saga resolves the charge's outcome (webhook, polling, or an operator) and books it.
    """

    @workflow.run
    @clear_end
    async def run(self, deposit: DepositInput) -> PaymentState:
        if (kyc_failure := await self.check_kyc(deposit.customer_id)) is not None:
            return await self.fail(*kyc_failure)
        risk = await self.assess_risk(
            RiskInput(
                deposit.payment_id, deposit.customer_id, "deposit", deposit.amount, deposit.currency
            )
        )
        if risk.decision != "approve":
            return await self.fail(FailureCode.RISK_DECLINED, ", ".join(risk.reasons))

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
            return await self.fail(*self.failure_of(outcome))

        credit_key = f"{deposit.payment_id}:credit"
        # Undone only if an operator later resolves the payment `failed` (e.g. the final status
        # write failed for good): the refund must not leave the credit behind.
        if workflow.patched("reverse-credit-on-failed-resolution"):
            self.compensations.add(functools.partial(self.reverse_posting, credit_key, "credit"))
        clearing = LineSpec(
            deposit.merchant_id,
            provider,
            AccountKind.provider_clearing,
            deposit.currency,
            -deposit.amount,
        )
        credit = PostTransactionInput(
            credit_key,
            [
                clearing,
                LineSpec(
                    deposit.merchant_id,
                    deposit.customer_id,
                    AccountKind.customer_wallet,
                    deposit.currency,
                    deposit.amount,
                ),
            ],
            f"deposit {deposit.payment_id}",
        )
        if workflow.patched("repay-receivable-first"):
            # Money rule 3: a customer in debt (a chargeback's receivable) repays it first; the
            # rest reaches the wallet, in the same ledger transaction.
            customer = deposit.customer_id
            credit.lines = [clearing]
            credit.split = Split(
                deposit.merchant_id,
                deposit.currency,
                deposit.amount,
                customer,
                AccountKind.customer_receivable,
                customer,
                AccountKind.customer_wallet,
            )
        try:
            await workflow.execute_local_activity_method(
                LedgerActivities.post_transaction, credit, **LOCAL_STEP
            )
        except STEP_FAILED as err:
            # The ledger refused the credit (nothing was posted): give the money back.
            await self.compensations.run()
            return await self.fail(FailureCode.CREDIT_FAILED, str(err.cause or err))
        return await self.set_status(PaymentStatus.SUCCEEDED)

    async def _refund_if_charged(self, deposit: DepositInput, provider: str) -> None:
        """Compensation of a charge: refund it at the provider if (and only if) it took money."""
        await workflow.execute_activity_method(
            psp.ProviderActivities.refund_charge,
            psp.RefundInput(
                provider,
                f"{deposit.payment_id}:refund",
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
