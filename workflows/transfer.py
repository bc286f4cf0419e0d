"""The cross-border transfer saga: quote, sanctions, fraud, hold, one atomic conversion, payout."""

from __future__ import annotations

import functools
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.ledger import (
        HoldFundsInput,
        LedgerActivities,
        PostHoldInput,
        PostTransactionInput,
    )
    from activities.risk import RiskActivities, RiskInput, ScreeningInput
    from domain.payments import FailureCode, PaymentState, PaymentStatus, TransferInput
    from ledger.models import AccountKind, LineSpec
    from providers.base import Outcome
    from workflows.saga import (
        DURABLE_LEDGER_STEP,
        LOCAL_STEP,
        STEP_FAILED,
        PaymentSaga,
        ProviderOperation,
        clear_end,
    )


@workflow.defn(name="Transfer")
class TransferWorkflow(PaymentSaga):
    """Money across currencies at the quoted rate: converted once, or not at all.

    Point of no return: the conversion is sent to the ledger. Before it a cancel voids the hold
    and ends `canceled`; after it the transfer is paid out to the end. Only a payout that
    certainly did not pay reverses the conversion.
    """

    @workflow.run
    @clear_end
    async def run(self, tr: TransferInput) -> PaymentState:
        convert_key = f"{tr.payment_id}:convert"
        converted = False
        if self.is_reset_run():
            # An earlier run may have converted, or be converting still: its undo is registered
            # first, so it runs last, after the hold's release, whichever of them landed.
            self.compensations.add(functools.partial(self.reverse_posting, convert_key, "convert"))
            converted = await self.local_step(LedgerActivities.is_posted, convert_key)
        self.releases_hold(f"{tr.payment_id}:hold")
        if converted:  # the earlier run's decisions stand: the payout is next
            self.point_of_no_return()
        elif (ended := await self._decide_and_convert(tr, convert_key)) is not None:
            return ended
        if tr.beneficiary.account is None:
            return await self.set_status(PaymentStatus.SUCCEEDED)

        payout = ProviderOperation(f"{tr.payment_id}:payout", tr.target_amount, tr.target_currency)

        provider, outcome = await self.call_provider(
            tr.providers, self.pay_out_to(payout, tr.beneficiary.account or ""), payout
        )
        if outcome != Outcome.succeeded:
            await self.compensations.run()  # reverse the conversion: nothing was paid out
            return await self.fail(*self.failure_of(outcome))
        settle_key = f"{tr.payment_id}:settle"
        self.compensations.add(functools.partial(self.reverse_posting, settle_key, "settle"))
        settled = await self.book(
            lambda: workflow.execute_local_activity_method(
                LedgerActivities.post_transaction,
                PostTransactionInput(
                    settle_key,
                    [
                        LineSpec(
                            tr.merchant_id,
                            tr.house_owner_id,
                            AccountKind.suspense,
                            tr.target_currency,
                            -tr.target_amount,
                        ),
                        LineSpec(
                            tr.merchant_id,
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
        )
        if not settled:
            await self.compensations.run()
            return await self.fail(*self.failure_of(Outcome.declined))
        return await self.set_status(PaymentStatus.SUCCEEDED)

    async def _decide_and_convert(self, tr: TransferInput, convert_key: str) -> PaymentState | None:
        """Quote, KYC, sanctions, fraud, hold and review, then the conversion; how the transfer
        ended if it did not get that far."""
        if self._quote_expired(tr):
            return await self.fail(FailureCode.QUOTE_EXPIRED, f"quote {tr.quote_id} expired")
        if (kyc_failure := await self.check_kyc(tr.customer_id)) is not None:
            return await self.fail(*kyc_failure)
        screening = await self.local_step(
            RiskActivities.screen_beneficiary,
            ScreeningInput(tr.beneficiary.name, tr.beneficiary.country),
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

        hold = await self.hold_funds(
            HoldFundsInput(
                f"{tr.payment_id}:hold",
                tr.merchant_id,
                tr.customer_id,
                tr.source_currency,
                tr.source_amount,
            )
        )
        if hold is None:
            return await self.fail(FailureCode.INSUFFICIENT_FUNDS, "available balance too low")
        if risk.decision == "review":
            rejection = await self.review_by_operator(risk.reasons, tr.review_deadline_seconds)
            if rejection is not None:
                await self.compensations.run()
                return await self.fail(FailureCode.REVIEW_REJECTED, rejection)
            # A review may outlast the quote: its locked rate is not honoured after expiry.
            if workflow.patched("quote-recheck-after-review") and self._quote_expired(tr):
                await self.compensations.run()
                return await self.fail(FailureCode.QUOTE_EXPIRED, f"quote {tr.quote_id} expired")

        # One atomic ledger transaction posts the hold with every leg of the conversion. Its
        # undo is registered first: the conversion may be posted and its answer lost. It runs
        # as a regular activity, so that it is in the history before it moves money: a cancel
        # that makes a workflow task fail can then never undo a conversion it did not see.
        self.compensations.add(functools.partial(self.reverse_posting, convert_key, "convert"))
        self.point_of_no_return()
        try:
            await workflow.execute_activity_method(
                LedgerActivities.post_hold,
                PostHoldInput(
                    convert_key,
                    hold.id,
                    self._conversion_legs(tr),
                    f"transfer {tr.payment_id} at {tr.rate}",
                ),
                **DURABLE_LEDGER_STEP,
            )
        except STEP_FAILED as err:
            # The ledger refused the conversion (nothing was posted): release the sender's funds.
            await self.compensations.run()
            return await self.fail(FailureCode.INTERNAL_ERROR, str(err.cause or err))
        return None

    @staticmethod
    def _quote_expired(tr: TransferInput) -> bool:
        return workflow.now() > datetime.fromisoformat(tr.expires_at)

    @staticmethod
    def _conversion_legs(tr: TransferInput) -> list[LineSpec]:
        """Sender to FX position and fees in the source currency; FX position to beneficiary.

        Every leg is in the payment's merchant's books, its house accounts included.
        """
        merchant, house = tr.merchant_id, tr.house_owner_id
        beneficiary = (
            LineSpec(
                merchant,
                tr.beneficiary.customer_id,
                AccountKind.customer_wallet,
                tr.target_currency,
                tr.target_amount,
            )
            if tr.beneficiary.customer_id
            # Paid out later: the target amount waits in transit until the payout succeeds.
            else LineSpec(
                merchant, house, AccountKind.suspense, tr.target_currency, tr.target_amount
            )
        )
        legs = [
            LineSpec(
                merchant,
                tr.customer_id,
                AccountKind.customer_wallet,
                tr.source_currency,
                -tr.source_amount,
            ),
            LineSpec(
                merchant,
                house,
                AccountKind.fx_position,
                tr.source_currency,
                tr.source_amount - tr.fee,
            ),
            LineSpec(
                merchant, house, AccountKind.fx_position, tr.target_currency, -tr.target_amount
            ),
            beneficiary,
        ]
        if tr.fee:
            legs.insert(2, LineSpec(merchant, house, AccountKind.fees, tr.source_currency, tr.fee))
        return legs
