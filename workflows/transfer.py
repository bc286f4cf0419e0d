"""The cross-border transfer saga: quote, sanctions, fraud, hold, one atomic conversion, payout."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import providers as psp
    from activities.ledger import (
        HoldFundsInput,
        LedgerActivities,
        PostHoldInput,
        PostTransactionInput,
    )
    from activities.risk import RiskActivities, RiskInput, ScreeningInput
    from domain.payments import FailureCode, PaymentState, PaymentStatus, TransferInput
    from ledger.models import AccountKind, LineSpec
    from providers.base import Outcome, ProviderResult
    from workflows.base import (
        LOCAL_STEP,
        PROVIDER_FAILURES,
        Compensations,
        PaymentSaga,
        provider_call,
    )


@workflow.defn(name="Transfer")
class TransferWorkflow(PaymentSaga):
    """Money across currencies at the quoted rate: converted once, or not at all."""

    @workflow.run
    async def run(self, tr: TransferInput) -> PaymentState:
        self.begin(tr.payment_id, tr.timings)
        compensations = Compensations()
        try:
            if workflow.now() > datetime.fromisoformat(tr.expires_at):
                return await self.fail(FailureCode.QUOTE_EXPIRED, f"quote {tr.quote_id} expired")
            if (kyc_failure := await self.check_kyc(tr.customer_id)) is not None:
                return await self.fail(*kyc_failure)
            screening = await workflow.execute_local_activity_method(
                RiskActivities.screen_beneficiary,
                ScreeningInput(tr.beneficiary.name, tr.beneficiary.country),
                **LOCAL_STEP,
            )
            if not screening.approved:
                return await self.fail(FailureCode.SANCTIONS_HIT, screening.reason)
            risk = await self.assess_risk(
                RiskInput(
                    tr.payment_id, tr.customer_id, "transfer", tr.source_amount, tr.source_currency
                )
            )
            if risk.decision == "decline":
                return await self.fail(FailureCode.RISK_DECLINED, ", ".join(risk.reasons))

            hold_request = HoldFundsInput(
                f"{tr.payment_id}:hold", tr.customer_id, tr.source_currency, tr.source_amount
            )
            hold = await self.hold_funds(hold_request, compensations)
            if hold is None:
                return await self.fail(FailureCode.INSUFFICIENT_FUNDS, "available balance too low")
            if risk.decision == "review":
                rejection = await self.review_by_operator(
                    risk.reasons, tr.review_deadline_seconds, lambda: False
                )
                if rejection is not None:
                    await compensations.run()
                    return await self.fail(FailureCode.REVIEW_REJECTED, rejection)

            # One atomic ledger transaction posts the hold with every leg of the conversion.
            conversion = await workflow.execute_local_activity_method(
                LedgerActivities.post_hold,
                PostHoldInput(
                    f"{tr.payment_id}:convert",
                    hold.id,
                    self._conversion_legs(tr),
                    f"transfer {tr.payment_id} at {tr.rate}",
                ),
                **LOCAL_STEP,
            )
            # The hold is spent; undoing the transfer now means reversing the conversion.
            compensations = Compensations()
            compensations.add(functools.partial(self.reverse, conversion.id, "convert"))
            if tr.beneficiary.account is None:
                return await self.set_status(PaymentStatus.SUCCEEDED)

            payout_key = f"{tr.payment_id}:payout"

            def pay_out_at(provider: str) -> Awaitable[ProviderResult]:
                return workflow.execute_activity_method(
                    psp.ProviderActivities.payout,
                    psp.PayoutInput(
                        provider,
                        payout_key,
                        tr.payment_id,
                        tr.target_amount,
                        tr.target_currency,
                        tr.beneficiary.account or "",
                    ),
                    **provider_call(tr.timings, provider),
                )

            provider, outcome = await self.call_provider(
                tr.providers, pay_out_at, payout_key, tr.timings
            )
            if outcome != Outcome.succeeded:
                await compensations.run()
                return await self.fail(*PROVIDER_FAILURES[outcome])
            await workflow.execute_local_activity_method(
                LedgerActivities.post_transaction,
                PostTransactionInput(
                    f"{tr.payment_id}:settle",
                    [
                        LineSpec(
                            tr.house_owner_id,
                            AccountKind.suspense,
                            tr.target_currency,
                            -tr.target_amount,
                        ),
                        LineSpec(
                            provider,
                            AccountKind.provider_clearing,
                            tr.target_currency,
                            tr.target_amount,
                        ),
                    ],
                    f"transfer {tr.payment_id} paid out",
                ),
                **LOCAL_STEP,
            )
            return await self.set_status(PaymentStatus.SUCCEEDED)
        except asyncio.CancelledError:
            await compensations.run()
            await self.set_status(PaymentStatus.CANCELED)
            raise

    @staticmethod
    def _conversion_legs(tr: TransferInput) -> list[LineSpec]:
        """Sender to FX position and fees in the source currency; FX position to beneficiary."""
        house = tr.house_owner_id
        beneficiary = (
            LineSpec(
                tr.beneficiary.customer_id,
                AccountKind.customer_wallet,
                tr.target_currency,
                tr.target_amount,
            )
            if tr.beneficiary.customer_id
            # Paid out later: the target amount waits in transit until the payout succeeds.
            else LineSpec(house, AccountKind.suspense, tr.target_currency, tr.target_amount)
        )
        legs = [
            LineSpec(
                tr.customer_id, AccountKind.customer_wallet, tr.source_currency, -tr.source_amount
            ),
            LineSpec(house, AccountKind.fx_position, tr.source_currency, tr.source_amount - tr.fee),
            LineSpec(house, AccountKind.fx_position, tr.target_currency, -tr.target_amount),
            beneficiary,
        ]
        if tr.fee:
            legs.insert(2, LineSpec(house, AccountKind.fees, tr.source_currency, tr.fee))
        return legs
