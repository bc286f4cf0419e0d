"""The bonus rules: grant, wagering and completion, expiry, forfeit (pure, like `wallet.rules`).

- A grant moves the amount from the merchant's bonus funding to the customer's bonus, one active
  bonus per customer and currency; a grant may set `max_bet`.
- A bet placed while a bonus is active belongs to it: once settled (by its win, or by the win
  that closes its round), its whole amount counts towards that bonus's wagering; when nothing is
  left to wager, what remains of the bonus becomes cash (`completed`) in the same transaction.
- A bonus past its `expires_at` is expired by the first call that touches its purse (whatever
  its timer did): what remains returns to the funding before the call is decided, so that the
  bonus takes no bet. The timer, when it fires, finds it ended.
- An expiry, an operator's forfeit or a withdrawal request's forfeit returns what remains to the
  merchant's funding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from wallet.decisions import after, posting, rebalance_answer, unrecorded
from wallet.errors import BonusAlreadyActive, BonusNotFound
from wallet.models import (
    ACCEPTED,
    BONUS,
    BONUS_FUNDING,
    CASH,
    NO_BALANCE,
    BetRecord,
    BonusRecord,
    BonusStatus,
    Decision,
    EndBonus,
    EventSpec,
    ForfeitActiveBonus,
    GrantBonus,
    Purse,
    PurseKey,
    WalletState,
    iso,
)


def grant_bonus(state: WalletState, call: GrantBonus) -> Decision:
    """Credit the bonus from the merchant's funding; one active bonus per customer and currency."""
    purse_key = (call.merchant_id, call.customer_id, call.currency)
    purse = state.purses.get(purse_key, Purse())
    existing = state.bonuses.get(call.bonus_id)
    if existing is not None:  # granted by an earlier attempt of the same request
        return Decision(ACCEPTED, bonus_view(existing, remaining(state, existing)), replayed=True)
    active = state.active_bonus(purse_key)
    if active is not None:
        detail = f"bonus {active.id} is active for {call.customer_id} in {call.currency}"
        return unrecorded(BonusAlreadyActive, detail, purse.balance())
    required = call.amount * call.wagering_multiplier
    bonus = BonusRecord(
        id=call.bonus_id,
        merchant_id=call.merchant_id,
        customer_id=call.customer_id,
        currency=call.currency,
        status=BonusStatus.active,
        amount=call.amount,
        wagering_required=required,
        wagering_remaining=required,
        expires_at=call.expires_at,
        max_bet=call.max_bet,
    )
    grant = posting(
        f"bonus:{call.merchant_id}:{call.bonus_id}:granted",
        call.merchant_id,
        call.customer_id,
        call.currency,
        [(BONUS_FUNDING, -call.amount), (BONUS, call.amount)],
        "bonus granted",
        {"bonus_id": call.bonus_id},
    )
    decision = Decision(ACCEPTED, bonus_view(bonus, call.amount), postings=[grant], bonuses=[bonus])
    decision.events.append(
        EventSpec(call.merchant_id, "bonus.created", "bonus", bonus.id, decision.answer)
    )
    if required == 0:  # nothing to wager: it is cash at once
        complete(decision, bonus, after(purse, decision.postings))
        decision.answer = bonus_view(decision.bonuses[-1], 0)
    return decision


def end_bonus(state: WalletState, call: EndBonus) -> Decision:
    """Expire or forfeit a bonus: what remains of it returns to the merchant's funding.

    A bonus that has already ended stays as it is (the answer says how it ended).
    """
    bonus = state.bonuses.get(call.bonus_id)
    if bonus is None or bonus.customer_id != call.customer_id:
        return unrecorded(BonusNotFound, f"no bonus {call.bonus_id}", NO_BALANCE)
    if bonus.status is not BonusStatus.active:
        return Decision(ACCEPTED, bonus_view(bonus, 0), replayed=True)
    left = remaining(state, bonus)
    postings = []
    if left > 0:
        postings.append(
            posting(
                f"bonus:{bonus.merchant_id}:{bonus.id}:{call.status}",
                bonus.merchant_id,
                bonus.customer_id,
                bonus.currency,
                [(BONUS, -left), (BONUS_FUNDING, left)],
                f"bonus {call.status}",
                {"bonus_id": bonus.id, "reason": call.reason},
            )
        )
    ended = replace(bonus, status=BonusStatus(call.status), ended_reason=call.reason or None)
    view = bonus_view(ended, 0)
    event = EventSpec(bonus.merchant_id, f"bonus.{call.status}", "bonus", bonus.id, view)
    return Decision(ACCEPTED, view, postings=postings, bonuses=[ended], events=[event])


def forfeit_active(state: WalletState, call: ForfeitActiveBonus) -> Decision:
    """A withdrawal request: the active bonus of the currency is forfeited (answer: the Bonus, or
    `{"bonus": null}` when none was active)."""
    bonus = state.active_bonus((call.merchant_id, call.customer_id, call.currency))
    if bonus is None:
        return Decision(ACCEPTED, {"bonus": None})
    end = EndBonus(call.merchant_id, call.customer_id, bonus.id, "forfeited", call.reason)
    return end_bonus(state, end)


def expiry_due(state: WalletState, purse_key: PurseKey | None) -> Decision | None:
    """The expiry of the purse's active bonus if it is past `expires_at`; None otherwise."""
    bonus = state.active_bonus(purse_key) if purse_key is not None else None
    if bonus is None or bonus.expires_at > state.now:
        return None
    return end_bonus(state, EndBonus(bonus.merchant_id, bonus.customer_id, bonus.id, "expired"))


def funding_bonus(state: WalletState, bet: BetRecord) -> BonusRecord | None:
    """The bonus the bet was placed under, if it is still active."""
    bonus = state.bonuses.get(bet.bonus_id) if bet.bonus_id else None
    return bonus if bonus is not None and bonus.status is BonusStatus.active else None


def count_wagering(state: WalletState, decision: Decision, settled: Iterable[BetRecord]) -> None:
    """Bets just settled: count each towards its bonus, if still active; complete a bonus that
    has nothing left to wager (its rest becomes cash, shown in the call's answer)."""
    wagered: dict[str, int] = {}
    for bet in settled:
        bonus = funding_bonus(state, bet)
        if bonus is not None:
            wagered[bonus.id] = wagered.get(bonus.id, 0) + bet.amount
    for bonus_id, amount in wagered.items():
        bonus = state.bonuses[bonus_id]
        left = max(bonus.wagering_remaining - amount, 0)
        counted = replace(bonus, wagering_remaining=left)
        decision.bonuses.append(counted)
        if left == 0:
            purse_before = state.purses[bonus.purse]
            complete(decision, counted, after(purse_before, decision.postings))
            rebalance_answer(decision, purse_before)


def complete(decision: Decision, bonus: BonusRecord, purse: Purse) -> None:
    """The bonus is wagered: what remains of it becomes cash, in the same transaction."""
    if purse.bonus > 0:
        decision.postings.append(
            posting(
                f"bonus:{bonus.merchant_id}:{bonus.id}:completed",
                bonus.merchant_id,
                bonus.customer_id,
                bonus.currency,
                [(BONUS, -purse.bonus), (CASH, purse.bonus)],
                "bonus wagered: the rest becomes cash",
                {"bonus_id": bonus.id},
            )
        )
    completed = replace(bonus, status=BonusStatus.completed, wagering_remaining=0)
    decision.bonuses.append(completed)
    view = bonus_view(completed, 0)
    decision.events.append(EventSpec(bonus.merchant_id, "bonus.completed", "bonus", bonus.id, view))


def bonus_view(bonus: BonusRecord, left: int) -> dict[str, Any]:
    """The Bonus object of the contract."""
    return {
        "id": bonus.id,
        "customer_id": bonus.customer_id,
        "status": str(bonus.status),
        "amount": bonus.amount,
        "currency": bonus.currency,
        "remaining": left if bonus.status is BonusStatus.active else 0,
        "wagering_required": bonus.wagering_required,
        "wagering_remaining": bonus.wagering_remaining,
        "expires_at": iso(bonus.expires_at),
        "max_bet": bonus.max_bet,
    }


def remaining(state: WalletState, bonus: BonusRecord) -> int:
    if bonus.status is not BonusStatus.active:
        return 0
    return state.purses.get(bonus.purse, Purse()).bonus
