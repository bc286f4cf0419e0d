"""The withdrawal saga: KYC, hold the funds, AML and fraud (maybe an operator's review), payout, post."""

from __future__ import annotations

import functools

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import providers as psp
    from activities.ledger import CustomerDebtInput, HoldFundsInput, LedgerActivities, PostHoldInput
    from activities.risk import RiskInput
    from domain.payments import FailureCode, PaymentState, PaymentStatus, WithdrawalInput
    from ledger.models import AccountKind, Hold, LineSpec
    from providers.base import Outcome
    from workflows.saga import LOCAL_STEP, PaymentSaga, ProviderOperation, clear_end


@workflow.defn(name="Withdrawal")
class WithdrawalWorkflow(PaymentSaga):
    """Money out: paid at most once, never without funds, and the hold posted only when paid.

    Point of no return: the payout request is sent. Before it a cancel voids the hold and ends
    `canceled`; after it the saga resolves the payout's outcome and posts or voids the hold.
    """

    waits_for_open_breakers = True  # a payout or refund has nowhere else to go

    @workflow.run
    @clear_end
    async def run(self, wd: WithdrawalInput) -> PaymentState:
        self.releases_hold(f"{wd.payment_id}:hold")
        payout = ProviderOperation(f"{wd.payment_id}:payout", wd.amount, wd.currency)
        if self.is_reset_run() and await self.local_step(
            psp.ProviderActivities.was_sent, payout.idempotency_key
        ):
            # Reset after an earlier run sent the payout: its decisions stand, the payout's
            # outcome is next, against the hold the earlier run made (found by its key).
            hold = await self.hold_funds(self._hold(wd))
        elif isinstance(decided := await self._decide(wd), PaymentState):
            return decided
        else:
            hold = decided
        if hold is None:
            return await self.fail(FailureCode.INSUFFICIENT_FUNDS, "available balance too low")

        # From here the money may leave: the hold is released only if the payout certainly
        # did not pay.
        self.point_of_no_return()
        provider, outcome = await self.call_provider(
            wd.providers, self.pay_out_to(payout, wd.destination), payout
        )
        if outcome != Outcome.succeeded:
            await self.compensations.run()
            return await self.fail(*self.failure_of(outcome))

        post_key = f"{wd.payment_id}:post"
        self.compensations.add(functools.partial(self.reverse_posting, post_key, "post"))
        posted = await self.book(
            lambda: workflow.execute_local_activity_method(
                LedgerActivities.post_hold,
                PostHoldInput(
                    post_key,
                    hold.id,
                    [
                        LineSpec(
                            wd.merchant_id,
                            wd.customer_id,
                            AccountKind.customer_wallet,
                            wd.currency,
                            -wd.amount,
                        ),
                        LineSpec(
                            wd.merchant_id,
                            provider,
                            AccountKind.provider_clearing,
                            wd.currency,
                            wd.amount,
                        ),
                    ],
                    f"withdrawal {wd.payment_id}",
                ),
                **LOCAL_STEP,
            )
        )
        if not posted:
            await self.compensations.run()
            return await self.fail(*self.failure_of(Outcome.declined))
        return await self.set_status(PaymentStatus.SUCCEEDED)

    async def _decide(self, wd: WithdrawalInput) -> Hold | PaymentState | None:
        """KYC, debt, the hold, fraud and review: the hold to pay out against (None: the funds
        are not there), or how the withdrawal ended."""
        if (kyc_failure := await self.check_kyc(wd.customer_id)) is not None:
            return await self.fail(*kyc_failure)
        if workflow.patched("refuse-customer-in-debt"):
            debt = await self.local_step(
                LedgerActivities.customer_debt,
                CustomerDebtInput(wd.merchant_id, wd.customer_id, wd.currency),
            )
            if debt > 0:
                return await self.fail(
                    FailureCode.CUSTOMER_IN_DEBT, f"the customer owes {debt} ({wd.currency})"
                )

        hold = await self.hold_funds(self._hold(wd))
        if hold is None:
            return None

        risk = await self.assess_risk(
            RiskInput(wd.payment_id, wd.customer_id, "withdrawal", wd.amount, wd.currency)
        )
        if risk.decision == "decline":
            await self.compensations.run()
            return await self.fail(FailureCode.RISK_DECLINED, ", ".join(risk.reasons))
        if risk.decision == "review":
            rejection = await self.review_by_operator(risk.reasons, wd.review_deadline_seconds)
            if rejection is not None:
                await self.compensations.run()
                return await self.fail(FailureCode.REVIEW_REJECTED, rejection)
        return hold

    @staticmethod
    def _hold(wd: WithdrawalInput) -> HoldFundsInput:
        return HoldFundsInput(
            f"{wd.payment_id}:hold", wd.merchant_id, wd.customer_id, wd.currency, wd.amount
        )
