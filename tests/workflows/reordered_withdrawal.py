"""A test-only change of the withdrawal saga: fraud rules before the hold, instead of after.

The same workflow name as the real saga, so that it replays the recorded withdrawal histories.
`PatchedWithdrawal` guards the new order with `workflow.patched` (how such a change ships);
`UnguardedWithdrawal` does not (how it must not); `UntypedUnguardedWithdrawal` does not either, and
takes both swapped steps' results untyped, so that each decodes whatever the other recorded (as
two steps with the same result type would). Everything else is the real saga's code.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import providers as psp
    from activities.ledger import HoldFundsInput, LedgerActivities, PostHoldInput
    from activities.risk import RiskInput, RiskResult
    from domain.payments import FailureCode, PaymentState, PaymentStatus, WithdrawalInput
    from ledger.models import AccountKind, LineSpec
    from providers.base import Outcome, ProviderResult
    from workflows.saga import LOCAL_STEP, PaymentSaga, ProviderOperation, clear_end, provider_call

PATCH = "withdrawal-risk-before-hold"


class ReorderedWithdrawal(PaymentSaga):
    guarded = True

    async def _risk(self, wd: WithdrawalInput) -> RiskResult:
        return await self.assess_risk(
            RiskInput(wd.payment_id, wd.customer_id, "withdrawal", wd.amount, wd.currency)
        )

    async def steps(self, wd: WithdrawalInput) -> PaymentState:
        self.releases_hold(f"{wd.payment_id}:hold")
        if (kyc_failure := await self.check_kyc(wd.customer_id)) is not None:
            return await self.fail(*kyc_failure)
        # The change: the fraud rules first, so that a declined payment never holds funds.
        risk_first = workflow.patched(PATCH) if self.guarded else True
        risk = await self._risk(wd) if risk_first else None
        hold = await self.hold_funds(
            HoldFundsInput(
                f"{wd.payment_id}:hold", wd.merchant_id, wd.customer_id, wd.currency, wd.amount
            )
        )
        if hold is None:
            return await self.fail(FailureCode.INSUFFICIENT_FUNDS, "available balance too low")
        if risk is None:
            risk = await self._risk(wd)
        if risk.decision == "decline":
            await self.compensations.run()
            return await self.fail(FailureCode.RISK_DECLINED, ", ".join(risk.reasons))
        if risk.decision == "review":
            rejection = await self.review_by_operator(risk.reasons, wd.review_deadline_seconds)
            if rejection is not None:
                await self.compensations.run()
                return await self.fail(FailureCode.REVIEW_REJECTED, rejection)

        payout = ProviderOperation(f"{wd.payment_id}:payout", wd.amount, wd.currency)

        def pay_out_at(provider: str) -> Awaitable[ProviderResult]:
            return workflow.execute_activity_method(
                psp.ProviderActivities.payout,
                psp.PayoutInput(
                    provider,
                    payout.idempotency_key,
                    wd.payment_id,
                    wd.amount,
                    wd.currency,
                    wd.destination,
                ),
                **provider_call(wd.timings, provider),
            )

        self.point_of_no_return()
        provider, outcome = await self.call_provider(wd.providers, pay_out_at, payout)
        if outcome != Outcome.succeeded:
            await self.compensations.run()
            return await self.fail(*self.failure_of(outcome))
        await workflow.execute_local_activity_method(
            LedgerActivities.post_hold,
            PostHoldInput(
                f"{wd.payment_id}:post",
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
        return await self.set_status(PaymentStatus.SUCCEEDED)

    run_steps = clear_end(steps)


@workflow.defn(name="Withdrawal")
class PatchedWithdrawal(ReorderedWithdrawal):
    @workflow.run
    async def run(self, wd: WithdrawalInput) -> PaymentState:
        return await self.run_steps(wd)


@workflow.defn(name="Withdrawal")
class UnguardedWithdrawal(ReorderedWithdrawal):
    guarded = False

    @workflow.run
    async def run(self, wd: WithdrawalInput) -> PaymentState:
        return await self.run_steps(wd)


@workflow.defn(name="Withdrawal")
class UntypedUnguardedWithdrawal(ReorderedWithdrawal):
    """The unguarded order, its two swapped steps' results read as plain JSON: each decodes
    whatever was recorded in its place, so the workflow code runs on as it would if both steps
    had the same result type, and only Temporal's own check of the markers can refuse it."""

    guarded = False

    async def _risk(self, wd: WithdrawalInput) -> RiskResult:
        risk_input = RiskInput(wd.payment_id, wd.customer_id, "withdrawal", wd.amount, wd.currency)
        recorded: dict[str, Any] = await workflow.execute_local_activity(
            "risk.assess_payment", risk_input, **LOCAL_STEP
        )
        return RiskResult(recorded.get("decision", "approve"), recorded.get("reasons", []))

    async def hold_funds(self, hold_request: HoldFundsInput) -> Any:
        return await workflow.execute_local_activity(
            "ledger.hold_funds", hold_request, **LOCAL_STEP
        )

    @workflow.run
    async def run(self, wd: WithdrawalInput) -> PaymentState:
        return await self.run_steps(wd)
