"""The game wallet's values: the calls, the state the rules read, and what a call decides.

Plain dataclasses of ints and strs: `wallet.rules` reads and changes them in memory, and
`wallet.engine` loads them from, and writes them back to, PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from ledger.models import AccountKind

if TYPE_CHECKING:
    from wallet.limits_check import Gate

TransactionKey: TypeAlias = tuple[str, str, str]
"""(merchant, game provider, transaction id): the idempotency key of a game call."""
CustomerKey: TypeAlias = tuple[str, str]
"""(merchant, customer)."""
PurseKey: TypeAlias = tuple[str, str, str]
"""(merchant, customer, currency): one customer's money in one currency."""
RoundKey: TypeAlias = tuple[str, str, str, str]
"""(merchant, game provider, customer, round id)."""

CASH = AccountKind.customer_wallet
BONUS = AccountKind.customer_bonus
GAME = AccountKind.game
BONUS_FUNDING = AccountKind.bonus_funding
PROMOTIONS = AccountKind.promotions
CUSTOMER_KINDS = (CASH, BONUS)
"""The accounts of a customer; the others are the merchant's (one per currency)."""

ACCEPTED = "accepted"
"""The outcome of a call the rules took; otherwise the outcome is its refusal's code."""


# ---------------------------------------------------------------------- the calls


@dataclass(frozen=True)
class Bet:
    """The game takes `amount` from the customer: cash first, then bonus."""

    type: ClassVar[str] = "bet"
    merchant_id: str
    customer_id: str
    game_provider: str
    transaction_id: str
    game_id: str
    round_id: str
    amount: int
    currency: str


@dataclass(frozen=True)
class Win:
    """The game pays `amount` (0 allowed) on one of the customer's bets."""

    type: ClassVar[str] = "win"
    merchant_id: str
    customer_id: str
    game_provider: str
    transaction_id: str
    bet_transaction_id: str
    amount: int
    round_closed: bool = False
    currency: str | None = None  # optional: checked against the bet's when given


@dataclass(frozen=True)
class Rollback:
    """The game cancels one of the customer's bets (perhaps one it never delivered)."""

    type: ClassVar[str] = "rollback"
    merchant_id: str
    customer_id: str
    game_provider: str
    transaction_id: str
    bet_transaction_id: str
    currency: str | None = None  # optional: which balance to answer when the bet is unknown


CreditType: TypeAlias = Literal["free_spin_win", "promo_win", "jackpot_win", "tournament_win"]


@dataclass(frozen=True)
class Credit:
    """A win with no bet (free spins, a promotion, a jackpot, a tournament): paid into cash from
    the merchant's promotions account."""

    merchant_id: str
    customer_id: str
    game_provider: str
    transaction_id: str
    type: CreditType
    amount: int
    currency: str
    game_id: str | None = None
    round_id: str | None = None


@dataclass(frozen=True)
class GrantBonus:
    """The merchant gives the customer a bonus, to be wagered before it becomes cash."""

    type: ClassVar[str] = "bonus_grant"
    merchant_id: str
    customer_id: str
    bonus_id: str
    amount: int
    currency: str
    wagering_multiplier: int
    expires_at: datetime
    max_bet: int | None = None  # a bet drawing on the bonus above it is refused


@dataclass(frozen=True)
class EndBonus:
    """The bonus's timer fired (`expired`) or an operator forfeited it (`forfeited`)."""

    type: ClassVar[str] = "bonus_end"
    merchant_id: str
    customer_id: str
    bonus_id: str
    status: Literal["expired", "forfeited"]
    reason: str = ""


@dataclass(frozen=True)
class ForfeitActiveBonus:
    """A withdrawal was requested: the customer's active bonus in `currency` (if any) is lost."""

    type: ClassVar[str] = "bonus_forfeit"
    merchant_id: str
    customer_id: str
    currency: str
    reason: str = "withdrawal requested"


GameCall: TypeAlias = Bet | Win | Rollback | Credit
BonusCall: TypeAlias = GrantBonus | EndBonus | ForfeitActiveBonus
Call: TypeAlias = GameCall | BonusCall


def transaction_key(call: GameCall) -> TransactionKey:
    return (call.merchant_id, call.game_provider, call.transaction_id)


def bet_key(call: Win | Rollback) -> TransactionKey:
    return (call.merchant_id, call.game_provider, call.bet_transaction_id)


def fingerprint(call: GameCall) -> str:
    """What tells a replay (same fingerprint) from another use of its transaction id."""
    content = {name: getattr(call, name) for name in _CONTENT[type(call)]}
    canonical = json.dumps([call.type, content], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# The fields of each game call that its fingerprint covers: all but its merchant (the key's).
_CONTENT = {
    cls: tuple(f.name for f in fields(cls) if f.name != "merchant_id")
    for cls in (Bet, Win, Rollback, Credit)
}


def customer_of(call: Call) -> CustomerKey:
    return (call.merchant_id, call.customer_id)


# ---------------------------------------------------------------------- the state


class BetStatus(StrEnum):
    open = "open"  # money taken, no win yet
    settled = "settled"  # it has a win (perhaps of 0)
    rolled_back = "rolled_back"
    refused = "refused"  # recorded with its refusal; it never took money


class BonusStatus(StrEnum):
    active = "active"
    completed = "completed"  # wagered: what remained became cash
    expired = "expired"
    forfeited = "forfeited"


@dataclass
class Purse:
    """A customer's money in one currency: the cash account (posted, held) and the bonus."""

    cash_posted: int = 0
    cash_held: int = 0
    bonus: int = 0

    @property
    def cash(self) -> int:
        """The cash a bet can take: posted minus held (a withdrawal's hold is not playable)."""
        return self.cash_posted - self.cash_held

    def balance(self) -> dict[str, int]:
        """The `balance` member of the answers."""
        return {"cash": self.cash, "bonus": self.bonus, "total": self.cash + self.bonus}


NO_BALANCE = {"cash": 0, "bonus": 0, "total": 0}


@dataclass
class RecordedCall:
    """A call taken or refused under its transaction id, with its answer (for its replays)."""

    customer_id: str
    type: str
    request_hash: str
    outcome: str  # ACCEPTED or the refusal's code
    answer: dict[str, Any]


@dataclass
class BetRecord:
    """What a bet took, and what happened to it since."""

    customer_id: str
    currency: str
    game_id: str
    round_id: str
    amount: int
    cash_part: int
    bonus_part: int
    status: BetStatus
    won: int = 0
    returned_to_bonus: int = 0  # the bonus-funded share of its wins (to bonus, or forfeited)
    rollback_transaction_id: str | None = None  # the first rollback, which later ones answer
    bonus_id: str | None = None  # the bonus active when it was placed: its wagering, its share


@dataclass
class Tombstone:
    """A rollback that came before its bet: the bet, if it ever comes, is refused."""

    customer_id: str
    rollback_transaction_id: str


@dataclass
class BonusRecord:
    """A bonus; while active, its remaining amount is the customer's bonus balance."""

    id: str
    merchant_id: str
    customer_id: str
    currency: str
    status: BonusStatus
    amount: int
    wagering_required: int
    wagering_remaining: int
    expires_at: datetime
    ended_reason: str | None = None
    max_bet: int | None = None

    @property
    def purse(self) -> PurseKey:
        return (self.merchant_id, self.customer_id, self.currency)


@dataclass
class WalletState:
    """Everything the rules read of the customers a batch of calls touches.

    The engine loads it under the customers' account locks; the rules change it in memory, call
    after call, so that each call of a batch sees the ones before it.
    """

    customers: set[CustomerKey] = field(default_factory=set)
    blocked: set[CustomerKey] = field(default_factory=set)
    purses: dict[PurseKey, Purse] = field(default_factory=dict)
    recorded: dict[TransactionKey, RecordedCall] = field(default_factory=dict)
    bets: dict[TransactionKey, BetRecord] = field(default_factory=dict)
    tombstones: dict[TransactionKey, Tombstone] = field(default_factory=dict)
    closed_rounds: set[RoundKey] = field(default_factory=set)
    bonuses: dict[str, BonusRecord] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))  # for bonus expiry
    gates: dict[CustomerKey, Gate] = field(default_factory=dict)  # self-exclusion, loss limits

    def active_bonus(self, purse: PurseKey) -> BonusRecord | None:
        for bonus in self.bonuses.values():
            if bonus.purse == purse and bonus.status is BonusStatus.active:
                return bonus
        return None

    def currencies(self, customer: CustomerKey) -> list[str]:
        """The currencies the customer has a wallet in, sorted."""
        return sorted(c for (m, cus, c) in self.purses if (m, cus) == customer)


# ---------------------------------------------------------------------- what a call decides


@dataclass(frozen=True)
class Posting:
    """A ledger transaction of one customer's purse and its merchant's accounts.

    Each line names an account kind; CASH and BONUS are the customer's, GAME and BONUS_FUNDING
    the merchant's (owned by its house).
    """

    idempotency_key: str
    merchant_id: str
    customer_id: str
    currency: str
    lines: tuple[tuple[AccountKind, int], ...]
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventSpec:
    """An event to append to the merchant's feed in the same transaction."""

    merchant_id: str
    type: str
    aggregate_type: str
    aggregate_id: str
    object: dict[str, Any]


@dataclass(frozen=True)
class TransactionRecord:
    """A row of wallet_transactions: the call, its outcome and answer, and what it moved."""

    key: TransactionKey
    customer_id: str
    type: str
    request_hash: str
    outcome: str
    answer: dict[str, Any]
    amount: int
    currency: str | None
    cash_part: int  # what moved on the customer's cash account (taken by a bet, else given)
    bonus_part: int  # the same on the customer's bonus account
    bet_transaction_id: str | None
    round_id: str | None
    ledger_key: str | None  # the idempotency key of its ledger transaction, if it moved money


@dataclass
class Decision:
    """What one call decided: its answer, and every change to write for it."""

    outcome: str  # ACCEPTED or the refusal's code
    answer: dict[str, Any]
    replayed: bool = False  # the answer of an earlier call, given again
    record: TransactionRecord | None = None
    postings: list[Posting] = field(default_factory=list)
    bets: list[tuple[TransactionKey, BetRecord]] = field(default_factory=list)  # new states
    tombstone: tuple[TransactionKey, Tombstone] | None = None
    closed_round: tuple[RoundKey, str] | None = None  # the round and the win that closed it
    bonuses: list[BonusRecord] = field(default_factory=list)  # new states, in order
    events: list[EventSpec] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.outcome == ACCEPTED

    @property
    def bonus(self) -> BonusRecord | None:
        """The last state of the bonus this decision changed last (None: no bonus changed)."""
        return self.bonuses[-1] if self.bonuses else None


def iso(moment: datetime) -> str:
    """A timestamp as the API writes it (UTC, `Z`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
