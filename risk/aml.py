"""AML monitoring rules: patterns over a customer's payments and bets, per merchant, off by default.

Each rule that fires names a review reason of the withdrawal it looks at:
- `low_wagering`: the customer's settled bets since their last withdrawal are below
  `min_wagering_before_withdrawal` times their deposits since then (money in and out, barely
  played);
- `structuring`: `structuring_deposits` or more deposits in 24 hours, each just under the review
  threshold (within `STRUCTURING_BAND` of it);
- `edd_required`: deposits of the last 30 days above `edd_threshold_eur` in all: enhanced due
  diligence before the next withdrawal.
Amounts are valued in euros like the other risk thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

STRUCTURING_BAND = Decimal("0.9")  # a deposit at 90 % or more of the threshold, but under it


@dataclass(frozen=True)
class ComplianceRules:
    """A merchant's monitoring rules; 0 turns a rule off."""

    min_wagering_before_withdrawal: Decimal = Decimal(0)
    structuring_deposits: int = 0
    edd_threshold_eur: int = 0

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None) -> ComplianceRules:
        stored = stored or {}
        return cls(
            Decimal(str(stored.get("min_wagering_before_withdrawal", 0))),
            int(stored.get("structuring_deposits", 0)),
            int(stored.get("edd_threshold_eur", 0)),
        )

    @property
    def any_on(self) -> bool:
        return bool(
            self.min_wagering_before_withdrawal
            or self.structuring_deposits
            or self.edd_threshold_eur
        )


@dataclass(frozen=True)
class WithdrawalFacts:
    """What the ledger and the wallet say of the customer, for one withdrawal's currency."""

    deposits_since_last_withdrawal: int
    settled_bets_since_last_withdrawal: int
    deposits_24h: list[tuple[int, str]] = field(default_factory=list)  # amount, currency
    deposits_30d: list[tuple[int, str]] = field(default_factory=list)


def aml_reasons(
    rules: ComplianceRules,
    facts: WithdrawalFacts,
    review_threshold_eur: int,
    value_in_eur: Callable[[int, str], Decimal],
) -> list[str]:
    """The review reasons the rules give a withdrawal, in rule order."""
    reasons = []
    multiple = rules.min_wagering_before_withdrawal
    wagering_due = multiple * facts.deposits_since_last_withdrawal
    if multiple > 0 and facts.settled_bets_since_last_withdrawal < wagering_due:
        reasons.append("low_wagering")
    if rules.structuring_deposits > 0:
        floor = STRUCTURING_BAND * review_threshold_eur
        near = [
            amount
            for amount, currency in facts.deposits_24h
            if floor <= value_in_eur(amount, currency) < review_threshold_eur
        ]
        if len(near) >= rules.structuring_deposits:
            reasons.append("structuring")
    if rules.edd_threshold_eur > 0:
        total = sum((value_in_eur(a, c) for a, c in facts.deposits_30d), Decimal(0))
        if total > rules.edd_threshold_eur:
            reasons.append("edd_required")
    return reasons
