"""The fraud rules engine: amount limits, velocity and country, each rule a reason code."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.money import major_to_minor


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
    """Thresholds in major units of the payment's currency; every one is a setting."""

    deposit_limit_major: int
    review_threshold_major: int
    velocity_max_payments: int
    blocked_countries: frozenset[str]

    def assess(self, ctx: RiskContext) -> RiskDecision:
        declines: list[str] = []
        reviews: list[str] = []
        if ctx.country.upper() in self.blocked_countries:
            declines.append("blocked_country")
        if ctx.recent_payments > self.velocity_max_payments:
            declines.append("velocity_exceeded")
        if ctx.kind == "deposit":
            if ctx.amount > major_to_minor(self.deposit_limit_major, ctx.currency):
                declines.append("deposit_amount_limit")
        elif ctx.amount >= major_to_minor(self.review_threshold_major, ctx.currency):
            reviews.append("large_amount")
        if declines:
            return RiskDecision("decline", declines + reviews)
        if reviews:
            return RiskDecision("review", reviews)
        return RiskDecision("approve")
