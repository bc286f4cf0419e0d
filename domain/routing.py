"""Routing as the public contract names it: method families, authorization counts, reasons."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MethodFamily(StrEnum):
    """What kind of payment method a deposit uses: accounts serve families, rates are per family."""

    CARD = "card"
    BANK = "bank"


# The sandbox's pay-by-bank tokens; every other token is a card. The one place a payment method
# is mapped to its family (an adapter with tokens of its own adds them here).
BANK_METHODS = frozenset({"pm_bank_redirect"})


def method_family(payment_method: str) -> MethodFamily:
    """The family of a deposit's payment method."""
    return MethodFamily.BANK if payment_method in BANK_METHODS else MethodFamily.CARD


class RoutingReason(StrEnum):
    """Why a payment's first provider is the one it is."""

    REQUESTED = "requested"  # the merchant named the provider
    PRIORITY = "priority"  # the merchant's priority order, unchanged at the front
    SUCCESS_RATE = "success_rate"  # the priority's first had a rate well below a peer's
    EXPLORATION = "exploration"  # a random eligible account, so that every rate stays known


@dataclass(frozen=True)
class AuthorizationStats:
    """An account's recent deposits that got an answer: approved (charged) or declined.

    Unavailability and rejections as invalid are not answers about the customer's money: they
    count for the circuit breaker, never here.
    """

    attempts: int
    approvals: int

    @property
    def rate(self) -> float:
        return self.approvals / self.attempts if self.attempts else 0.0
