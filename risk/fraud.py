"""The fraud rules engine: amount limits, velocity and country, each rule a reason code.

Amount limits are in euros: a payment in another currency is valued at the reference rates, so
that 5,000 JPY (about 31 EUR) needs no review and 4,999 KWD (about 15,000 EUR) does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from domain.money import CURRENCY_EXPONENTS
from fx.rates import PIVOT_CURRENCY, RateSource, SandboxRates


@dataclass(frozen=True)
class RiskContext:
    """One payment and what we know of its customer's recent activity."""

    kind: str
    amount: int
    currency: str
    country: str
    recent_payments: int  # of this customer within the velocity window, this one included


@dataclass(frozen=True)
class RiskDecision:
    """`approve`, `review` or `decline`, with the codes of the rules that fired."""

    decision: str
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FraudRules:
    """Thresholds in euros (major units), whatever the payment's currency; each is a setting."""

    deposit_limit_eur: int
    review_threshold_eur: int
    velocity_max_payments: int
    blocked_countries: frozenset[str]
    rates: RateSource = field(default_factory=SandboxRates)

    def value_in_eur(self, amount: int, currency: str) -> Decimal:
        """What `amount` minor units of `currency` are worth in euros at the reference rate."""
        major = Decimal(amount).scaleb(-CURRENCY_EXPONENTS[currency])
        # Divided by the currency's units per euro: exact for the table's own entries.
        return major / self.rates.mid_rate(PIVOT_CURRENCY, currency)

    def assess(self, ctx: RiskContext) -> RiskDecision:
        declines: list[str] = []
        reviews: list[str] = []
        if ctx.country.upper() in self.blocked_countries:
            declines.append("blocked_country")
        if ctx.recent_payments > self.velocity_max_payments:
            declines.append("velocity_exceeded")
        value = self.value_in_eur(ctx.amount, ctx.currency)
        if ctx.kind == "deposit":
            if value > self.deposit_limit_eur:
                declines.append("deposit_amount_limit")
        elif value >= self.review_threshold_eur:
            reviews.append("large_amount")
        if declines:
            return RiskDecision("decline", declines + reviews)
        if reviews:
            return RiskDecision("review", reviews)
        return RiskDecision("approve")
