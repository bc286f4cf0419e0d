"""The game wallet's rules: what one call does to a customer's wallet, decided in memory.

Read this file to learn the wallet. Every function is pure: it reads a `WalletState` (balances,
bets, tombstones, closed rounds, bonuses, recorded answers, block status) and returns a
`Decision` (the answer, and the ledger postings, bet, round, bonus and event changes to write);
`apply` then folds the decision into the state, so the next call sees it. `wallet.engine` loads
the state from PostgreSQL, runs `decide` + `apply` for each call of a batch, and writes the
decisions back in one database transaction.

The rules, as the contract and its decisions put them:

- A game call's idempotency key is (merchant, game provider, transaction id). The same key with
  the same content answers the first answer again (a replay); with any other content (another
  customer, another call type) it is refused `duplicate_transaction`, and nothing is recorded.
- A bet draws the customer's available cash (posted minus held) first, then the bonus. A bet it
  cannot cover is refused `insufficient_funds`; a blocked customer's bet `customer_blocked`; a
  bet in a currency the customer has no wallet in `wrong_currency`; a bet in a closed round
  `round_closed`; a bet whose id a rollback already took `bet_rolled_back`. Refusals are recorded
  under their key: a replay answers the same refusal, and a rollback of a refused bet moves
  nothing.
- A win pays into the bonus at most what its bet took from the bonus (less what earlier wins of
  that bet returned there), the rest into cash; all into cash when no bonus is active. A bet
  takes several wins until its round is closed. Its first win (even of 0) settles it, and a
  settled bet's whole amount counts towards the active bonus's wagering; when nothing is left
  to wager, what remains of the bonus becomes cash (`completed`) in the same transaction.
- A rollback returns the bet's cash part to cash and its bonus part to the bonus (to the
  merchant's bonus funding if the bonus has ended meanwhile). A rollback of a settled bet is
  refused `bet_settled`; a second rollback answers the first's answer. A rollback of a bet never
  seen moves nothing and leaves a tombstone that refuses the bet if it ever arrives.
- A win or rollback must name a bet of its own customer (else `bet_not_found`); wins and
  rollbacks of a blocked customer are taken.
- A bonus grant moves the amount from the merchant's bonus funding to the customer's bonus, one
  active bonus per customer and currency; its expiry or forfeit returns what remains to the
  funding. While a bonus is active its remaining amount is the customer's bonus balance; with
  none active that balance is 0.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ledger.models import AccountKind
from wallet import limits_check
from wallet.errors import (
    BetNotFound,
    BetRolledBack,
    BetSettled,
    BonusAlreadyActive,
    BonusNotFound,
    CustomerBlocked,
    CustomerNotFound,
    DuplicateTransaction,
    RoundClosed,
    WalletError,
    WalletInsufficientFunds,
    WrongCurrency,
)
from wallet.models import (
    ACCEPTED,
    BONUS,
    BONUS_FUNDING,
    CASH,
    GAME,
    NO_BALANCE,
    Bet,
    BetRecord,
    BetStatus,
    BonusRecord,
    BonusStatus,
    Call,
    Decision,
    EndBonus,
    EventSpec,
    GameCall,
    GrantBonus,
    Posting,
    Purse,
    PurseKey,
    RecordedCall,
    Rollback,
    Tombstone,
    TransactionRecord,
    WalletState,
    Win,
    bet_key,
    customer_of,
    fingerprint,
    iso,
    transaction_key,
)

Lines = list[tuple[AccountKind, int]]


def decide(state: WalletState, call: Call) -> Decision:
    """What `call` does, given `state`; the state is not changed (see `apply`)."""
    if customer_of(call) not in state.customers:
        return _unrecorded(CustomerNotFound, f"no customer {call.customer_id}", NO_BALANCE)
    if isinstance(call, GrantBonus):
        return grant_bonus(state, call)
    if isinstance(call, EndBonus):
        return end_bonus(state, call)
    earlier = replay(state, call)
    if earlier is not None:
        return earlier
    if isinstance(call, Bet):
        return bet(state, call)
    if isinstance(call, Win):
        return win(state, call)
    return rollback(state, call)


# ---------------------------------------------------------------------- idempotency


def replay(state: WalletState, call: GameCall) -> Decision | None:
    """The first answer again, if the call's transaction id was used; None if it is new."""
    first = state.recorded.get(transaction_key(call))
    if first is None:
        return None
    if first.request_hash != fingerprint(call):
        detail = (
            f"transaction {call.transaction_id} of {call.game_provider} was already used"
            " with other content"
        )
        return _unrecorded(DuplicateTransaction, detail, _balance_for(state, call))
    return Decision(first.outcome, first.answer, replayed=True)


# ---------------------------------------------------------------------- bets


def bet(state: WalletState, call: Bet) -> Decision:
    """Take the bet's amount: available cash first, then bonus; or refuse it, recorded."""
    key = transaction_key(call)
    purse_key = (call.merchant_id, call.customer_id, call.currency)
    purse = state.purses.get(purse_key)
    tombstone = state.tombstones.get(key)
    if tombstone is not None:  # its later rollbacks answer the tombstone's rollback
        detail = "the bet was rolled back before it came"
        return _refuse_bet(state, call, BetRolledBack, detail, tombstone.rollback_transaction_id)
    if customer_of(call) in state.blocked:
        return _refuse_bet(state, call, CustomerBlocked, f"customer {call.customer_id} is blocked")
    responsible = limits_check.refusal(state, call)  # self-exclusion, loss limits
    if responsible is not None:
        return _refuse_bet(state, call, *responsible)
    if purse is None:
        detail = f"customer {call.customer_id} has no {call.currency} wallet"
        return _refuse_bet(state, call, WrongCurrency, detail)
    if _round_closed(state, call.merchant_id, call.game_provider, call.customer_id, call.round_id):
        return _refuse_bet(state, call, RoundClosed, f"round {call.round_id} is closed")
    if purse.cash + purse.bonus < call.amount:
        detail = f"the bet of {call.amount} exceeds cash {purse.cash} + bonus {purse.bonus}"
        return _refuse_bet(state, call, WalletInsufficientFunds, detail)

    cash_part = min(call.amount, max(purse.cash, 0))
    bonus_part = call.amount - cash_part
    lines = [(CASH, -cash_part), (BONUS, -bonus_part), (GAME, call.amount)]
    record = BetRecord(
        customer_id=call.customer_id,
        currency=call.currency,
        game_id=call.game_id,
        round_id=call.round_id,
        amount=call.amount,
        cash_part=cash_part,
        bonus_part=bonus_part,
        status=BetStatus.open,
    )
    decision = _accept(state, call, purse_key, lines, (call.amount, cash_part, bonus_part))
    decision.bet = (key, record)
    return decision


def _refuse_bet(
    state: WalletState,
    call: Bet,
    refusal: type[WalletError],
    detail: str,
    rolled_back_by: str | None = None,
) -> Decision:
    """A refused bet, recorded with its refusal: it took nothing, and cannot win."""
    purse_key = (call.merchant_id, call.customer_id, call.currency)
    decision = _refuse(state, call, refusal, detail, purse_key, call.currency)
    record = BetRecord(
        customer_id=call.customer_id,
        currency=call.currency,
        game_id=call.game_id,
        round_id=call.round_id,
        amount=call.amount,
        cash_part=0,
        bonus_part=0,
        status=BetStatus.refused,
        rollback_transaction_id=rolled_back_by,
    )
    decision.bet = (transaction_key(call), record)
    return decision


# ---------------------------------------------------------------------- wins


def win(state: WalletState, call: Win) -> Decision:
    """Pay the win: into the bonus up to what its bet took from it, the rest into cash."""
    the_bet = _own_bet(state, call)
    if the_bet is None:
        tombstone = state.tombstones.get(bet_key(call))
        if tombstone is not None and tombstone.customer_id == call.customer_id:
            detail = f"bet {call.bet_transaction_id} was rolled back"
            return _refuse(state, call, BetRolledBack, detail, *_unknown_bet_purse(state, call))
        detail = f"no bet {call.bet_transaction_id} of customer {call.customer_id}"
        return _refuse(state, call, BetNotFound, detail, *_unknown_bet_purse(state, call))
    purse_key = (call.merchant_id, call.customer_id, the_bet.currency)
    if call.currency is not None and call.currency != the_bet.currency:
        detail = f"the bet is in {the_bet.currency}, not {call.currency}"
        return _refuse(state, call, WrongCurrency, detail, purse_key, the_bet.currency)
    if the_bet.status is BetStatus.rolled_back:
        detail = f"bet {call.bet_transaction_id} was rolled back"
        return _refuse(state, call, BetRolledBack, detail, purse_key, the_bet.currency)
    if _round_closed(
        state, call.merchant_id, call.game_provider, call.customer_id, the_bet.round_id
    ):
        detail = f"round {the_bet.round_id} is closed"
        return _refuse(state, call, RoundClosed, detail, purse_key, the_bet.currency)

    bonus = state.active_bonus(purse_key)
    to_bonus = min(call.amount, the_bet.bonus_part - the_bet.returned_to_bonus) if bonus else 0
    to_cash = call.amount - to_bonus
    lines = [(GAME, -call.amount), (CASH, to_cash), (BONUS, to_bonus)]
    moved = (call.amount, to_cash, to_bonus)
    decision = _accept(state, call, purse_key, lines, moved, round_id=the_bet.round_id)
    settled = replace(
        the_bet,
        status=BetStatus.settled,
        won=the_bet.won + call.amount,
        returned_to_bonus=the_bet.returned_to_bonus + to_bonus,
    )
    decision.bet = (bet_key(call), settled)
    if call.round_closed:
        round_key = (call.merchant_id, call.game_provider, call.customer_id, the_bet.round_id)
        decision.closed_round = (round_key, call.transaction_id)
    if bonus is not None and the_bet.status is BetStatus.open:
        _count_wagering(state, decision, bonus, the_bet.amount)
    return decision


def _count_wagering(
    state: WalletState, decision: Decision, bonus: BonusRecord, wagered: int
) -> None:
    """A bet just settled: count it towards the bonus; complete the bonus when fully wagered."""
    remaining = max(bonus.wagering_remaining - wagered, 0)
    decision.bonus = replace(bonus, wagering_remaining=remaining)
    if remaining == 0:
        purse = _after(state.purses[bonus.purse], decision.postings)
        _complete(decision, decision.bonus, purse)
        _rebalance_answer(decision, state.purses[bonus.purse])


def _complete(decision: Decision, bonus: BonusRecord, purse: Purse) -> None:
    """The bonus is wagered: what remains of it becomes cash, in the same transaction."""
    if purse.bonus > 0:
        decision.postings.append(
            _posting(
                f"bonus:{bonus.merchant_id}:{bonus.id}:completed",
                bonus.merchant_id,
                bonus.customer_id,
                bonus.currency,
                [(BONUS, -purse.bonus), (CASH, purse.bonus)],
                "bonus wagered: the rest becomes cash",
                {"bonus_id": bonus.id},
            )
        )
    decision.bonus = replace(bonus, status=BonusStatus.completed, wagering_remaining=0)
    view = bonus_view(decision.bonus, 0)
    decision.events.append(EventSpec(bonus.merchant_id, "bonus.completed", "bonus", bonus.id, view))


# ---------------------------------------------------------------------- rollbacks


def rollback(state: WalletState, call: Rollback) -> Decision:
    """Return an open bet's money where it came from; or leave a tombstone for an unseen one."""
    the_bet = state.bets.get(bet_key(call))
    tombstone = state.tombstones.get(bet_key(call))
    owner = the_bet.customer_id if the_bet else tombstone.customer_id if tombstone else None
    if owner is not None and owner != call.customer_id:
        detail = f"no bet {call.bet_transaction_id} of customer {call.customer_id}"
        return _refuse(state, call, BetNotFound, detail, *_unknown_bet_purse(state, call))
    first = the_bet.rollback_transaction_id if the_bet else None
    first = first or (tombstone.rollback_transaction_id if tombstone else None)
    if first is not None:
        return _second_rollback(state, call, first)
    if the_bet is None:
        return _tombstone(state, call)
    purse_key = (call.merchant_id, call.customer_id, the_bet.currency)
    if call.currency is not None and call.currency != the_bet.currency:
        detail = f"the bet is in {the_bet.currency}, not {call.currency}"
        return _refuse(state, call, WrongCurrency, detail, purse_key, the_bet.currency)
    if the_bet.status is BetStatus.settled:
        detail = f"bet {call.bet_transaction_id} has a win"
        return _refuse(state, call, BetSettled, detail, purse_key, the_bet.currency)
    if the_bet.status is BetStatus.refused:  # it took nothing: nothing to return
        decision = _accept(state, call, purse_key, [], (0, 0, 0), round_id=the_bet.round_id)
    else:
        bonus_home = BONUS if state.active_bonus(purse_key) else BONUS_FUNDING
        lines = [
            (GAME, -the_bet.amount),
            (CASH, the_bet.cash_part),
            (bonus_home, the_bet.bonus_part),
        ]
        moved = (
            the_bet.amount,
            the_bet.cash_part,
            the_bet.bonus_part if bonus_home is BONUS else 0,
        )
        decision = _accept(state, call, purse_key, lines, moved, round_id=the_bet.round_id)
    status = BetStatus.rolled_back if the_bet.status is BetStatus.open else the_bet.status
    rolled_back = replace(the_bet, status=status, rollback_transaction_id=call.transaction_id)
    decision.bet = (bet_key(call), rolled_back)
    return decision


def _tombstone(state: WalletState, call: Rollback) -> Decision:
    """A rollback of a bet never seen: 200, nothing moved, and the bet refused if it comes."""
    purse_key, _ = _unknown_bet_purse(state, call)
    decision = _accept(state, call, purse_key, [], (0, 0, 0))
    decision.tombstone = (bet_key(call), Tombstone(call.customer_id, call.transaction_id))
    return decision


def _second_rollback(state: WalletState, call: Rollback, first_id: str) -> Decision:
    """Another rollback of a bet already rolled back: the first rollback's answer, again."""
    first = state.recorded[(call.merchant_id, call.game_provider, first_id)]
    currency = first.answer.get("currency")
    record = TransactionRecord(
        key=transaction_key(call),
        customer_id=call.customer_id,
        type=call.type,
        request_hash=fingerprint(call),
        outcome=first.outcome,
        answer=first.answer,
        amount=0,
        currency=currency,
        cash_part=0,
        bonus_part=0,
        bet_transaction_id=call.bet_transaction_id,
        round_id=None,
        ledger_key=None,
    )
    return Decision(first.outcome, first.answer, replayed=True, record=record)


# ---------------------------------------------------------------------- bonuses


def grant_bonus(state: WalletState, call: GrantBonus) -> Decision:
    """Credit the bonus from the merchant's funding; one active bonus per customer and currency."""
    purse_key = (call.merchant_id, call.customer_id, call.currency)
    purse = state.purses.get(purse_key, Purse())
    existing = state.bonuses.get(call.bonus_id)
    if existing is not None:  # granted by an earlier attempt of the same request
        return Decision(ACCEPTED, bonus_view(existing, _remaining(state, existing)), replayed=True)
    active = state.active_bonus(purse_key)
    if active is not None:
        detail = f"bonus {active.id} is active for {call.customer_id} in {call.currency}"
        return _unrecorded(BonusAlreadyActive, detail, purse.balance())
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
    )
    grant = _posting(
        f"bonus:{call.merchant_id}:{call.bonus_id}:granted",
        call.merchant_id,
        call.customer_id,
        call.currency,
        [(BONUS_FUNDING, -call.amount), (BONUS, call.amount)],
        "bonus granted",
        {"bonus_id": call.bonus_id},
    )
    decision = Decision(ACCEPTED, bonus_view(bonus, call.amount), postings=[grant], bonus=bonus)
    decision.events.append(
        EventSpec(call.merchant_id, "bonus.created", "bonus", bonus.id, decision.answer)
    )
    if required == 0:  # nothing to wager: it is cash at once
        _complete(decision, bonus, _after(purse, decision.postings))
        decision.answer = bonus_view(decision.bonus or bonus, 0)
    return decision


def end_bonus(state: WalletState, call: EndBonus) -> Decision:
    """Expire or forfeit a bonus: what remains of it returns to the merchant's funding.

    A bonus that has already ended stays as it is (the answer says how it ended).
    """
    bonus = state.bonuses.get(call.bonus_id)
    if bonus is None or bonus.customer_id != call.customer_id:
        return _unrecorded(BonusNotFound, f"no bonus {call.bonus_id}", NO_BALANCE)
    if bonus.status is not BonusStatus.active:
        return Decision(ACCEPTED, bonus_view(bonus, 0), replayed=True)
    remaining = _remaining(state, bonus)
    postings = []
    if remaining > 0:
        postings.append(
            _posting(
                f"bonus:{bonus.merchant_id}:{bonus.id}:{call.status}",
                bonus.merchant_id,
                bonus.customer_id,
                bonus.currency,
                [(BONUS, -remaining), (BONUS_FUNDING, remaining)],
                f"bonus {call.status}",
                {"bonus_id": bonus.id, "reason": call.reason},
            )
        )
    ended = replace(bonus, status=BonusStatus(call.status), ended_reason=call.reason or None)
    view = bonus_view(ended, 0)
    event = EventSpec(bonus.merchant_id, f"bonus.{call.status}", "bonus", bonus.id, view)
    return Decision(ACCEPTED, view, postings=postings, bonus=ended, events=[event])


def bonus_view(bonus: BonusRecord, remaining: int) -> dict[str, Any]:
    """The Bonus object of the contract."""
    return {
        "id": bonus.id,
        "customer_id": bonus.customer_id,
        "status": str(bonus.status),
        "amount": bonus.amount,
        "currency": bonus.currency,
        "remaining": remaining if bonus.status is BonusStatus.active else 0,
        "wagering_required": bonus.wagering_required,
        "wagering_remaining": bonus.wagering_remaining,
        "expires_at": iso(bonus.expires_at),
    }


def _remaining(state: WalletState, bonus: BonusRecord) -> int:
    if bonus.status is not BonusStatus.active:
        return 0
    return state.purses.get(bonus.purse, Purse()).bonus


# ---------------------------------------------------------------------- folding a decision in


def apply(state: WalletState, decision: Decision) -> None:
    """Fold a decision into the state, so that the next call of the batch sees it."""
    for posting in decision.postings:
        purse_key = (posting.merchant_id, posting.customer_id, posting.currency)
        state.purses[purse_key] = _after(state.purses.get(purse_key, Purse()), [posting])
    record = decision.record
    if record is not None:
        state.recorded[record.key] = RecordedCall(
            record.customer_id, record.type, record.request_hash, record.outcome, record.answer
        )
    if decision.bet is not None:
        state.bets[decision.bet[0]] = decision.bet[1]
    if decision.tombstone is not None:
        state.tombstones[decision.tombstone[0]] = decision.tombstone[1]
    if decision.closed_round is not None:
        state.closed_rounds.add(decision.closed_round[0])
    if decision.bonus is not None:
        state.bonuses[decision.bonus.id] = decision.bonus
    limits_check.fold(state, decision)


# ---------------------------------------------------------------------- the pieces


def _accept(
    state: WalletState,
    call: GameCall,
    purse_key: PurseKey | None,
    lines: Lines,
    moved: tuple[int, int, int],
    *,
    round_id: str | None = None,
) -> Decision:
    """A taken game call: its posting (if it moves money), answer, record and event.

    `moved` is (amount, cash part, bonus part) as the answer shows them; `purse_key` is None
    only for a call that moves nothing and knows no currency (a tombstone's rollback).
    """
    amount, cash_part, bonus_part = moved
    currency = purse_key[2] if purse_key is not None else None
    moving = [(kind, value) for kind, value in lines if value != 0]
    ledger_key = None
    postings = []
    if moving:
        assert purse_key is not None and currency is not None
        ledger_key = wallet_ledger_key(call)
        metadata = {"game_provider": call.game_provider, "transaction_id": call.transaction_id}
        postings.append(
            _posting(
                ledger_key,
                call.merchant_id,
                call.customer_id,
                currency,
                moving,
                f"game {call.type}",
                metadata,
            )
        )
    purse = state.purses.get(purse_key) if purse_key is not None else None
    balance = _after(purse, postings).balance() if purse is not None else NO_BALANCE
    if isinstance(call, Bet):
        round_id = call.round_id
    answer = {
        "transaction_id": call.transaction_id,
        "type": call.type,
        "amount": amount,
        "currency": currency,
        "cash_part": cash_part,
        "bonus_part": bonus_part,
        "balance": balance,
        "customer_id": call.customer_id,
        "game_provider": call.game_provider,
        "bet_transaction_id": None if isinstance(call, Bet) else call.bet_transaction_id,
        "round_id": round_id,
    }
    record = _record(call, ACCEPTED, answer, moved, currency, round_id, ledger_key)
    event = EventSpec(
        call.merchant_id,
        "wallet.transaction",
        "wallet_transaction",
        f"{call.game_provider}:{call.transaction_id}",
        answer,
    )
    return Decision(ACCEPTED, answer, record=record, postings=postings, events=[event])


def _refuse(
    state: WalletState,
    call: GameCall,
    refusal: type[WalletError],
    detail: str,
    purse_key: PurseKey | None,
    currency: str | None,
) -> Decision:
    """A refused game call, recorded under its key so that its replay answers it again."""
    purse = state.purses.get(purse_key) if purse_key else None
    balance = purse.balance() if purse is not None else NO_BALANCE
    assert refusal.code is not None
    answer = {"code": refusal.code, "detail": detail, "balance": balance}
    amount = call.amount if isinstance(call, Bet | Win) else 0
    round_id = call.round_id if isinstance(call, Bet) else None
    record = _record(call, refusal.code, answer, (amount, 0, 0), currency, round_id, None)
    return Decision(refusal.code, answer, record=record)


def _unrecorded(refusal: type[WalletError], detail: str, balance: dict[str, int]) -> Decision:
    """A refusal that records nothing: its call's key stays free (or stays the first's)."""
    assert refusal.code is not None
    return Decision(refusal.code, {"code": refusal.code, "detail": detail, "balance": balance})


def _record(
    call: GameCall,
    outcome: str,
    answer: dict[str, Any],
    moved: tuple[int, int, int],
    currency: str | None,
    round_id: str | None,
    ledger_key: str | None,
) -> TransactionRecord:
    amount, cash_part, bonus_part = moved
    return TransactionRecord(
        key=transaction_key(call),
        customer_id=call.customer_id,
        type=call.type,
        request_hash=fingerprint(call),
        outcome=outcome,
        answer=answer,
        amount=amount,
        currency=currency,
        cash_part=cash_part,
        bonus_part=bonus_part,
        bet_transaction_id=None if isinstance(call, Bet) else call.bet_transaction_id,
        round_id=round_id,
        ledger_key=ledger_key,
    )


def _posting(
    key: str,
    merchant_id: str,
    customer_id: str,
    currency: str,
    lines: Lines,
    description: str,
    metadata: dict[str, Any],
) -> Posting:
    return Posting(key, merchant_id, customer_id, currency, tuple(lines), description, metadata)


def wallet_ledger_key(call: GameCall) -> str:
    """The ledger idempotency key of a game call: its merchant, game provider and transaction."""
    return f"wallet:{call.merchant_id}:{call.game_provider}:{call.transaction_id}"


def _after(purse: Purse | None, postings: list[Posting]) -> Purse:
    """The purse once the postings' lines on the customer's accounts are applied."""
    after = replace(purse) if purse is not None else Purse()
    for posting in postings:
        for kind, amount in posting.lines:
            if kind is CASH:
                after.cash_posted += amount
            elif kind is BONUS:
                after.bonus += amount
    return after


def _rebalance_answer(decision: Decision, purse_before: Purse) -> None:
    """The call's answer shows the balance after everything it did (a completion included)."""
    if decision.record is None or "balance" not in decision.answer:
        return
    answer = {**decision.answer, "balance": _after(purse_before, decision.postings).balance()}
    decision.answer = answer
    decision.record = replace(decision.record, answer=answer)
    decision.events = [
        replace(event, object=answer) if event.type == "wallet.transaction" else event
        for event in decision.events
    ]


def _own_bet(state: WalletState, call: Win | Rollback) -> BetRecord | None:
    """The bet the call names, if it is the call's customer's and it took money (or tried)."""
    the_bet = state.bets.get(bet_key(call))
    if the_bet is None or the_bet.customer_id != call.customer_id:
        return None
    if the_bet.status is BetStatus.refused:
        return None
    return the_bet


def _round_closed(
    state: WalletState, merchant_id: str, game_provider: str, customer_id: str, round_id: str
) -> bool:
    return (merchant_id, game_provider, customer_id, round_id) in state.closed_rounds


def _unknown_bet_purse(
    state: WalletState, call: Win | Rollback
) -> tuple[PurseKey | None, str | None]:
    """The purse to answer with when the call's bet is unknown: its currency if the call names
    one, else the customer's only currency; None when that says nothing."""
    currency = call.currency
    if currency is None:
        currencies = state.currencies(customer_of(call))
        currency = currencies[0] if len(currencies) == 1 else None
    if currency is None:
        return None, None
    return (call.merchant_id, call.customer_id, currency), currency


def _balance_for(state: WalletState, call: GameCall) -> dict[str, int]:
    """The customer's balance that concerns a call: its bet's currency, or its own."""
    if isinstance(call, Bet):
        purse = state.purses.get((call.merchant_id, call.customer_id, call.currency))
        return purse.balance() if purse else NO_BALANCE
    the_bet = _own_bet(state, call)
    if the_bet is not None:
        purse = state.purses.get((call.merchant_id, call.customer_id, the_bet.currency))
        return purse.balance() if purse else NO_BALANCE
    purse_key, _ = _unknown_bet_purse(state, call)
    purse = state.purses.get(purse_key) if purse_key else None
    return purse.balance() if purse else NO_BALANCE
