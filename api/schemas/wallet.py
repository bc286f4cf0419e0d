"""The game wallet: bets, wins, rollbacks, credits, bonuses and the calls booked."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, JsonValue, field_validator

from api.schemas.common import (
    Currency,
    MinorUnits,
    StrictBody,
    _supported,
    _supported_or_none,
)
from domain.money import CURRENCY_EXPONENTS

GameProvider = Field(
    pattern=r"^[A-Za-z0-9_.-]{1,64}$",
    description="the game provider (aggregator) that sends the call; with `transaction_id`, the"
    " call's idempotency key",
    examples=["pragmatic"],
)
TransactionId = Field(min_length=1, max_length=255, description="the game provider's id")
GameText = Field(min_length=1, max_length=255)
OptionalCurrency = Field(
    default=None,
    pattern=r"^[A-Z]{3}$",
    description="checked against the bet's currency; names the balance to answer when the bet is"
    " unknown",
    json_schema_extra={"enum": list[JsonValue]([*sorted(CURRENCY_EXPONENTS), None])},
)


class WalletBetCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    game_provider: str = GameProvider
    transaction_id: str = TransactionId
    game_id: str = GameText
    round_id: str = GameText
    amount: int = MinorUnits
    currency: str = Currency

    _currency = field_validator("currency")(_supported)


class WalletWinCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    game_provider: str = GameProvider
    transaction_id: str = TransactionId
    bet_transaction_id: str = TransactionId
    amount: int = Field(ge=0, le=10**15, strict=True, description="minor units; 0 settles a loss")
    round_closed: bool = Field(default=False, strict=True)
    currency: str | None = OptionalCurrency

    _currency = field_validator("currency")(_supported_or_none)


class WalletRollbackCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    game_provider: str = GameProvider
    transaction_id: str = TransactionId
    bet_transaction_id: str = TransactionId
    currency: str | None = OptionalCurrency

    _currency = field_validator("currency")(_supported_or_none)


CreditType = Literal["free_spin_win", "promo_win", "jackpot_win", "tournament_win"]


class WalletCreditCreate(StrictBody):
    """A win with no bet (free spins, a promotion, a jackpot, a tournament), paid into cash from
    the merchant's promotions account."""

    customer_id: str = Field(min_length=1, max_length=64)
    game_provider: str = GameProvider
    transaction_id: str = TransactionId
    type: CreditType
    amount: int = MinorUnits
    currency: str = Currency
    game_id: str | None = Field(default=None, min_length=1, max_length=255)
    round_id: str | None = Field(default=None, min_length=1, max_length=255)

    _currency = field_validator("currency")(_supported)


class WalletBalance(BaseModel):
    cash: int
    bonus: int
    total: int


class WalletTransaction(BaseModel):
    """A bet, win or rollback as taken: its parts from (bets) or to (wins, rollbacks) cash and
    bonus, and the customer's balance after it."""

    transaction_id: str
    type: Literal["bet", "win", "rollback"] | CreditType
    amount: int
    currency: str | None  # none only for a rollback of an unseen bet of a multi-currency customer
    cash_part: int
    bonus_part: int
    balance: WalletBalance
    customer_id: str
    game_provider: str
    bet_transaction_id: str | None
    round_id: str | None


class Wallet(BaseModel):
    """A customer's game wallet in one currency: `cash` is what a bet can take (posted - held)."""

    customer_id: str
    currency: str
    cash: int
    bonus: int
    total: int
    wagering_remaining: int


class BonusCreate(StrictBody):
    amount: int = MinorUnits
    currency: str = Currency
    wagering_multiplier: int = Field(
        ge=0, le=1000, strict=True, description="wagering required = amount x multiplier"
    )
    expires_in_seconds: int = Field(ge=1, le=366 * 86_400, strict=True)
    max_bet: int | None = Field(
        default=None,
        gt=0,
        le=10**15,
        strict=True,
        description="minor units: a bet drawing on the bonus above it is refused bonus_max_bet",
    )

    _currency = field_validator("currency")(_supported)


class Bonus(BaseModel):
    id: str
    customer_id: str
    status: Literal["active", "completed", "expired", "forfeited"]
    amount: int
    currency: str
    remaining: int
    wagering_required: int
    wagering_remaining: int
    expires_at: datetime
    max_bet: int | None = None


class WalletCall(BaseModel):
    """A game call as booked under its transaction id, with the answer it was given (a
    refusal's answer is its problem's `code`, `detail` and `balance`)."""

    id: str = Field(description="`wtx_` and the booking's sequence number: the cursor")
    transaction_id: str
    game_provider: str
    customer_id: str
    type: Literal["bet", "win", "rollback"] | CreditType
    outcome: str = Field(description="`accepted`, or the refusal's code")
    amount: int
    currency: str | None
    cash_part: int
    bonus_part: int
    bet_transaction_id: str | None
    round_id: str | None
    answer: dict[str, JsonValue]
    created_at: datetime


class WalletCallList(BaseModel):
    data: list[WalletCall]
    has_more: bool
