"""KYC and fraud activities: load what the rules need, decide, record the KYC result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import failures
from paysaga.observability import sdk_meter
from paysaga.store import CustomerRow, Store, aml
from risk.aml import aml_reasons
from risk.fraud import FraudRules, RiskContext
from risk.kyc import KycProvider, KycSubject

AML_REVIEWS_TOTAL = "paysaga_aml_reviews_total"  # {rule}: low_wagering, structuring, edd_required


@dataclass
class KycInput:
    customer_id: str


@dataclass
class KycResult:
    approved: bool
    failure_code: str | None = None
    reason: str | None = None


@dataclass
class ScreeningInput:
    name: str
    country: str


@dataclass
class RiskInput:
    payment_id: str
    customer_id: str
    kind: str
    amount: int
    currency: str


@dataclass
class RiskResult:
    decision: str  # approve, review or decline
    reasons: list[str] = field(default_factory=list)


@dataclass
class Screening:
    """KYC, then the fraud rules' decision (None when KYC refused: the rules were not run)."""

    kyc: KycResult
    risk: RiskResult | None = None


class RiskActivities:
    """The customer checks of every saga."""

    def __init__(
        self, store: Store, kyc: KycProvider, fraud: FraudRules, velocity_window: timedelta
    ) -> None:
        self._store = store
        self._kyc = kyc
        self._fraud = fraud
        self._velocity_window = velocity_window

    @activity.defn(name="risk.check_kyc")
    async def check_kyc(self, check: KycInput) -> KycResult:
        """Identity, age, country and sanctions; the verdict is recorded on the customer."""
        return await self._kyc_of(await self._customer(check.customer_id))

    @activity.defn(name="risk.screen_beneficiary")
    async def screen_beneficiary(self, party: ScreeningInput) -> KycResult:
        """Sanctions screening of a transfer's beneficiary."""
        verdict = self._kyc.screen(party.name, party.country)
        return KycResult(verdict.approved, verdict.failure_code, verdict.reason)

    @activity.defn(name="risk.assess_payment")
    async def assess_payment(self, payment: RiskInput) -> RiskResult:
        """The fraud rules on this payment and the customer's recent activity."""
        return await self._risk_of(await self._customer(payment.customer_id), payment)

    @activity.defn(name="risk.screen_payment")
    async def screen_payment(self, payment: RiskInput) -> Screening:
        """`check_kyc`, then, if it approved, `assess_payment`: one local step, one customer read."""
        customer = await self._customer(payment.customer_id)
        kyc = await self._kyc_of(customer)
        if not kyc.approved:
            return Screening(kyc)
        return Screening(kyc, await self._risk_of(customer, payment))

    async def _customer(self, customer_id: str) -> CustomerRow:
        customer = await self._store.get_customer(customer_id)
        if customer is None:
            raise ApplicationError(
                f"no customer {customer_id}", type=failures.CUSTOMER_NOT_FOUND, non_retryable=True
            )
        return customer

    async def _kyc_of(self, customer: CustomerRow) -> KycResult:
        subject = KycSubject(customer.full_name, customer.birth_date, customer.country)
        verdict = self._kyc.check(subject, datetime.now(UTC).date())
        await self._store.record_kyc(customer.id, verdict.status, verdict.reason)
        return KycResult(verdict.approved, verdict.failure_code, verdict.reason)

    async def _risk_of(self, customer: CustomerRow, payment: RiskInput) -> RiskResult:
        since = datetime.now(UTC) - self._velocity_window
        recent = await self._store.count_recent_payments(payment.customer_id, since)
        decision = self._fraud.assess(
            RiskContext(payment.kind, payment.amount, payment.currency, customer.country, recent)
        )
        result = RiskResult(decision.decision, list(decision.reasons))
        if payment.kind == "withdrawal":
            result = await self._monitored(customer, payment, result)
        if result.decision == "review":
            await aml.record_review_reasons(self._store.pool, payment.payment_id, result.reasons)
        return result

    async def _monitored(
        self, customer: CustomerRow, payment: RiskInput, result: RiskResult
    ) -> RiskResult:
        """The merchant's AML monitoring rules on a withdrawal: their reasons send it to review
        (a decline stays a decline)."""
        rules = await aml.compliance_rules(self._store.pool, customer.merchant_id)
        if not rules.any_on or result.decision == "decline":
            return result
        facts = await aml.withdrawal_facts(
            self._store.pool,
            customer.merchant_id,
            customer.id,
            payment.currency,
            payment.payment_id,
        )
        reasons = aml_reasons(
            rules, facts, self._fraud.review_threshold_eur, self._fraud.value_in_eur
        )
        if not reasons:
            return result
        counter = sdk_meter.counter(
            activity.metric_meter(),
            AML_REVIEWS_TOTAL,
            "Withdrawals the AML monitoring rules sent to review, by rule.",
        )
        for reason in reasons:
            counter.add(1, {"rule": reason})
        return RiskResult("review", [*result.reasons, *reasons])
