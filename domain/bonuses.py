"""Bonuses as their workflow sees them: the expiry timer's input, an operator's forfeit, an end."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BonusInput:
    """A granted bonus whose remaining amount is removed when it expires (ISO 8601 `expires_at`)."""

    bonus_id: str
    merchant_id: str
    customer_id: str
    currency: str
    amount: int
    expires_at: str


@dataclass
class ForfeitRequest:
    """An operator takes the bonus back before its expiry."""

    reason: str
    operator: str = ""
    # The API's HMAC over the decision (domain.decisions): a saga takes no decision without it.
    token: str = ""


@dataclass
class EndBonusInput:
    """End the bonus as `expired` or `forfeited`, if it is still active."""

    bonus_id: str
    merchant_id: str
    customer_id: str
    status: str
    reason: str = ""


@dataclass
class BonusEnd:
    """How the bonus stands after an end was asked: `expired`, `forfeited`, or how it had
    already ended (`completed`, or the other of the two)."""

    bonus_id: str
    status: str
