"""The refund saga: hold the amount on the wallet, refund at the charge's provider, post the hold."""

from __future__ import annotations

import functools
from collections.abc import Awaitable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import providers as psp
    from activities.ledger import HoldFundsInput, LedgerActivities, PostHoldInput
    from activities.payments import RecordStatusInput
    from activities.refunds import RefundActivities
    from domain.payments import FailureCode, PaymentState, PaymentStatus, RecordedStatus
    from domain.refunds import WORKFLOW_NAME, RefundInput
    from ledger.models import AccountKind, LineSpec
    from providers.base import Outcome, ProviderResult
    from workflows.saga import (
        LOCAL_STEP,
        PaymentSaga,
        ProviderOperation,
        clear_end,
        provider_call,
    )


@workflow.defn(name=WORKFLOW_NAME)
class RefundWorkflow(PaymentSaga):
    """Money back to the card: refunded at most once, never from a wallet that lacks it, and the
    hold posted only when the provider refunded.

    Point of no return: the refund request is sent. Before it a cancel (from the Temporal UI)
    voids the hold and fails the refund `canceled`; after it the saga resolves the provider's
    outcome (its answer, or polling; an operator once unknown too long) and posts or voids the
    hold. A provider's refusal (declined, or rejected as invalid) voids it: the wallet is whole.
    Every ledger and provider key starts with the deposit's id, then the refund's
    (`refund_key_prefix`), so that reconciliation finds the refund under the deposit.
    """

    waits_for_open_breakers = True  # a payout or refund has nowhere else to go

    def begin(self, refund: RefundInput) -> None:  # type: ignore[override]
        self.identify(refund.refund_id, refund.timings, refund.key_prefix)
        self._state = PaymentState(PaymentStatus.PROCESSING, refund.provider)

    async def record_status(self, change: RecordStatusInput) -> RecordedStatus | None:
        recorded: RecordedStatus | None = await workflow.execute_local_activity_method(
            RefundActivities.record_status, change, **LOCAL_STEP
        )
        return recorded

    @workflow.run
    @clear_end
    async def run(self, refund: RefundInput) -> PaymentState:
        hold_key = f"{refund.key_prefix}:hold"
        self.releases_hold(hold_key)
        hold = await self.hold_funds(
            HoldFundsInput(
                hold_key, refund.merchant_id, refund.customer_id, refund.currency, refund.amount
            )
        )
        if hold is None:
            return await self.fail(FailureCode.INSUFFICIENT_FUNDS, "available balance too low")

        operation = ProviderOperation(f"{refund.key_prefix}:refund", refund.amount, refund.currency)

        def refund_at(provider: str) -> Awaitable[ProviderResult]:
            return workflow.execute_activity_method(
                psp.ProviderActivities.refund,
                psp.RefundInput(
                    provider,
                    operation.idempotency_key,
                    refund.payment_id,  # the provider's settlement lines name the deposit
                    refund.charge_idempotency_key,
                    refund.amount,
                    refund.currency,
                ),
                **provider_call(refund.timings, provider),
            )

        # From here the money may leave: the hold is released only if the provider certainly
        # did not refund.
        self.point_of_no_return()
        provider, outcome = await self.call_provider([refund.provider], refund_at, operation)
        if outcome != Outcome.succeeded:
            await self.compensations.run()
            return await self.fail(*self.failure_of(outcome))

        post_key = f"{refund.key_prefix}:post"
        self.compensations.add(functools.partial(self.reverse_posting, post_key, "post"))
        posted = await self.book(
            lambda: workflow.execute_local_activity_method(
                LedgerActivities.post_hold,
                PostHoldInput(
                    post_key,
                    hold.id,
                    [
                        LineSpec(
                            refund.merchant_id,
                            refund.customer_id,
                            AccountKind.customer_wallet,
                            refund.currency,
                            -refund.amount,
                        ),
                        LineSpec(
                            refund.merchant_id,
                            provider,
                            AccountKind.provider_clearing,
                            refund.currency,
                            refund.amount,
                        ),
                    ],
                    f"refund {refund.refund_id} of {refund.payment_id}",
                ),
                **LOCAL_STEP,
            )
        )
        if not posted:
            await self.compensations.run()
            return await self.fail(*self.failure_of(Outcome.declined))
        return await self.set_status(PaymentStatus.SUCCEEDED)
