"""The wallet's branch of the error tree (see domain.errors): the refusals of a wallet call.

A refusal is an answer, not a crash: the rules record it under the call's transaction id (its
replay answers it again) and the API answers it as problem+json with the customer's current
`balance`. Each class's `code` is the contract's; `api.problems` gives it its HTTP status.
"""

from __future__ import annotations

from domain.errors import PaysagaError, ServiceUnavailable


class WalletError(PaysagaError):
    """A wallet call refused by the rules; `extra["balance"]` is the customer's balance now."""


class WalletInsufficientFunds(WalletError):
    """The bet is larger than the customer's cash and bonus together: nothing is booked."""

    code = "insufficient_funds"


class CustomerBlocked(WalletError):
    """The customer is blocked: bets are refused (wins and rollbacks are still taken)."""

    code = "customer_blocked"


class CustomerSelfExcluded(WalletError):
    """The customer excluded themselves: bets are refused until the exclusion ends."""

    code = "customer_self_excluded"


class LossLimitReached(WalletError):
    """The bet would take the customer's losses of a period past their loss limit."""

    code = "loss_limit_reached"


class CustomerNotFound(WalletError):
    """No customer of the merchant has this id (another merchant's answers the same)."""

    code = "customer_not_found"


class BetNotFound(WalletError):
    """A win or rollback names a bet the customer never placed (or one that was refused)."""

    code = "bet_not_found"


class BetRolledBack(WalletError):
    """The bet was rolled back (perhaps before it arrived): it takes no win and no bet."""

    code = "bet_rolled_back"


class BetSettled(WalletError):
    """A rollback of a bet that has a win: the round's outcome stands."""

    code = "bet_settled"


class RoundClosed(WalletError):
    """A bet, or a further win, in a round that a win closed."""

    code = "round_closed"


class BonusMaxBet(WalletError):
    """A bet drawing on the bonus is above the bonus's `max_bet`: nothing is booked."""

    code = "bonus_max_bet"


class DuplicateTransaction(WalletError):
    """The transaction id was already used, under this game provider, with other content."""

    code = "duplicate_transaction"


class WrongCurrency(WalletError):
    """The customer has no wallet in the call's currency, or it is not the bet's."""

    code = "wrong_currency"


class BonusAlreadyActive(WalletError):
    """The customer already has an active bonus in this currency: one at a time."""

    code = "bonus_already_active"


class BonusNotFound(WalletError):
    """No bonus of the merchant has this id."""

    code = "bonus_not_found"


class BonusNotActive(WalletError):
    """The bonus has already ended (completed, expired or forfeited): it cannot be forfeited."""

    code = "bonus_not_active"


REFUSALS: dict[str, type[WalletError]] = {
    cls.code: cls
    for cls in (
        WalletInsufficientFunds,
        CustomerBlocked,
        CustomerSelfExcluded,
        LossLimitReached,
        CustomerNotFound,
        BetNotFound,
        BetRolledBack,
        BetSettled,
        RoundClosed,
        BonusMaxBet,
        DuplicateTransaction,
        WrongCurrency,
        BonusAlreadyActive,
        BonusNotFound,
        BonusNotActive,
    )
    if cls.code is not None
}
"""Each refusal class by its code: how a stored refusal becomes an error again."""


# ---------------------------------------------------------------------- the writers' limits


class WalletUnavailable(ServiceUnavailable):
    """The wallet could not book the call now (503 with `Retry-After`). Nothing is lost by
    sending the same call again: if it was booked after all, its transaction id replays it."""

    code = "wallet_unavailable"
    retry_after_seconds = 1


class WalletBusy(WalletUnavailable):
    """The writer of the call's customer has a full queue: the call was not taken."""

    code = "wallet_busy"


class WalletTimeout(WalletUnavailable):
    """The call's batch waited longer than the writer's lock or statement time-out (a row
    locked by another transaction, a slow database): it was not booked."""

    code = "wallet_timeout"


class WalletStopped(WalletUnavailable):
    """The wallet's writers stopped (the process is shutting down) before answering the call."""

    code = "wallet_stopped"
