"""The withdrawal saga: KYC, hold the funds, AML and fraud (maybe an operator's review), payout, post."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import providers as psp
    from activities.ledger import HoldFundsInput, LedgerActivities, PostHoldInput
    from activities.risk import RiskInput
    from domain.payments import (
        FailureCode,
        PaymentState,
        PaymentStatus,
        WithdrawalInput,
    )
    from ledger.models import AccountKind, LineSpec
    from providers.base import Outcome, ProviderResult
    from workflows.base import (
        LOCAL_STEP,
        PROVIDER_FAILURES,
        Compensations,
        PaymentSaga,
        provider_call,
    )


@workflow.defn(name="Withdrawal")
class WithdrawalWorkflow(PaymentSaga):
    """Money out: paid at most once, never without funds, and the hold posted only when paid."""

    def __init__(self) -> None:
        super().__init__()
        self._cancel_requested = False
        self._payout_sent = False

    @workflow.update(name="cancel")
    async def cancel(self) -> PaymentState:
        """The customer's cancel: honoured until the payout is sent."""
        self._cancel_requested = True
        await workflow.wait_condition(lambda: self._state.status.is_terminal)
        return self._state

    @cancel.validator
    def _cancel_allowed(self) -> None:
        if self._payout_sent or self._state.status.is_terminal:
            raise ApplicationError("the payout was already sent", type="TooLateToCancel")

    @workflow.run
    async def run(self, wd: WithdrawalInput) -> PaymentState:
        self.begin(wd.payment_id, wd.timings)
        payout_key = f"{wd.payment_id}:payout"
        compensations = Compensations()
        try:
            if (kyc_failure := await self.check_kyc(wd.customer_id)) is not None:
                return await self.fail(*kyc_failure)

            hold_request = HoldFundsInput(
                f"{wd.payment_id}:hold", wd.customer_id, wd.currency, wd.amount
            )
            hold = await self.hold_funds(hold_request, compensations)
            if hold is None:
                return await self.fail(FailureCode.INSUFFICIENT_FUNDS, "available balance too low")

            risk = await self.assess_risk(
                RiskInput(wd.payment_id, wd.customer_id, "withdrawal", wd.amount, wd.currency)
            )
            if risk.decision == "decline":
                await compensations.run()
                return await self.fail(FailureCode.RISK_DECLINED, ", ".join(risk.reasons))
            if risk.decision == "review":
                rejection = await self.review_by_operator(
                    risk.reasons, wd.review_deadline_seconds, lambda: self._cancel_requested
                )
                if rejection is not None:
                    await compensations.run()
                    return await self.fail(FailureCode.REVIEW_REJECTED, rejection)

            if self._cancel_requested:
                await compensations.run()
                return await self.set_status(PaymentStatus.CANCELED)
            # From here the money may leave: no more cancel, and the hold is released only on a
            # payout that certainly did not pay.
            self._payout_sent = True

            def pay_out_at(provider: str) -> Awaitable[ProviderResult]:
                return workflow.execute_activity_method(
                    psp.ProviderActivities.payout,
                    psp.PayoutInput(
                        provider, payout_key, wd.payment_id, wd.amount, wd.currency, wd.destination
                    ),
                    **provider_call(wd.timings, provider),
                )

            provider, outcome = await self.call_provider(
                wd.providers, pay_out_at, payout_key, wd.timings
            )
            if outcome != Outcome.succeeded:
                await compensations.run()
                return await self.fail(*PROVIDER_FAILURES[outcome])

            await workflow.execute_local_activity_method(
                LedgerActivities.post_hold,
                PostHoldInput(
                    f"{wd.payment_id}:post",
                    hold.id,
                    [
                        LineSpec(
                            wd.customer_id, AccountKind.customer_wallet, wd.currency, -wd.amount
                        ),
                        LineSpec(provider, AccountKind.provider_clearing, wd.currency, wd.amount),
                    ],
                    f"withdrawal {wd.payment_id}",
                ),
                **LOCAL_STEP,
            )
            return await self.set_status(PaymentStatus.SUCCEEDED)
        except asyncio.CancelledError:
            # An operator's cancel in the Temporal UI: undo what can be undone before the payout.
            if not self._payout_sent:
                await compensations.run()
                await self.set_status(PaymentStatus.CANCELED)
            raise
