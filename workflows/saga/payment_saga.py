"""The base of every payment saga: the steps the sagas share (screening, holds, reversals)."""

from __future__ import annotations

import functools
from typing import TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from activities.ledger import (
        HoldFundsInput,
        LedgerActivities,
        ReleaseHoldInput,
        ReverseByKeyInput,
    )
    from activities.risk import KycInput, RiskActivities, RiskInput, RiskResult, Screening
    from domain import search_attributes as sa
    from domain.payments import (
        FailureCode,
    )
    from ledger.models import Hold
    from workflows.saga.provider_outcome import ProviderOutcomes
    from workflows.saga.steps import LOCAL_STEP, STEP_FAILED, error_type

T = TypeVar("T")


class PaymentSaga(ProviderOutcomes):
    """Status, search attributes, cancels, reviews, resolutions and provider events of a payment.

    Built floor by floor: `SagaState` (state), `StatusKeeping` (status), `OperatorDecisions`
    (operator), `ClearEnd` (cancel), `ProviderOutcomes` (provider_outcome), then the steps
    the sagas share, here.
    """

    async def check_kyc(self, customer_id: str) -> tuple[str, str | None] | None:
        """KYC and sanctions on the customer: None if approved, else (failure code, reason)."""
        kyc = await self.local_step(RiskActivities.check_kyc, KycInput(customer_id))
        return None if kyc.approved else (kyc.failure_code or FailureCode.KYC_REJECTED, kyc.reason)

    async def assess_risk(self, payment: RiskInput) -> RiskResult:
        """The fraud rules' decision (approve, review, decline), shown as a search attribute."""
        risk: RiskResult = await self.local_step(RiskActivities.assess_payment, payment)
        self._mirror_risk_decision(risk)
        return risk

    def _mirror_risk_decision(self, risk: RiskResult) -> None:
        decision = sa.RISK_DECISION.value_set(risk.decision)
        if self.batch_status_writes:
            self._attributes_unmirrored.append(decision)  # with the next status change
        else:
            workflow.upsert_search_attributes([decision])

    async def screen(self, payment: RiskInput) -> tuple[str, str | None] | None:
        """KYC, then the fraud rules, in one local step: None if both approve, else (failure
        code, reason). The decision is mirrored like `assess_risk`'s."""
        screening: Screening = await self.local_step(RiskActivities.screen_payment, payment)
        kyc, risk = screening.kyc, screening.risk
        if not kyc.approved or risk is None:
            return kyc.failure_code or FailureCode.KYC_REJECTED, kyc.reason
        self._mirror_risk_decision(risk)
        if risk.decision != "approve":
            return FailureCode.RISK_DECLINED, ", ".join(risk.reasons)
        return None

    async def hold_funds(self, hold_request: HoldFundsInput) -> Hold | None:
        """Reserve the funds; None when they are not there (its release: `releases_hold`)."""
        try:
            return await self.local_step(LedgerActivities.hold_funds, hold_request)
        except STEP_FAILED as err:
            if error_type(err) == failures.INSUFFICIENT_FUNDS:
                return None
            raise

    def releases_hold(self, hold_key: str) -> None:
        """Register the release of the saga's hold, found by its key, before any step runs.

        Before any step, not just before the hold: a workflow task can run local steps (the
        hold among them) and then be lost to a cancel that arrived meanwhile; its retry sees the
        cancel first and must still find and release that hold.
        """
        self.compensations.add(functools.partial(self.release_hold, hold_key))

    async def release_hold(self, hold_key: str) -> None:
        """Void the hold made under `hold_key`, found by that key, if it is still pending."""
        await workflow.execute_local_activity_method(
            LedgerActivities.release_hold,
            ReleaseHoldInput(f"{self._key_prefix}:void", hold_key),
            **LOCAL_STEP,
        )

    async def reverse_posting(self, transaction_key: str, step: str) -> None:
        """Reverse the ledger transaction posted under `transaction_key`, if it was posted."""
        await workflow.execute_local_activity_method(
            LedgerActivities.reverse_by_key,
            ReverseByKeyInput(f"{self._key_prefix}:reverse-{step}", transaction_key),
            **LOCAL_STEP,
        )
