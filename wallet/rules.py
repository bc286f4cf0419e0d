"""The game wallet's rules: what one call does to a customer's wallet, decided in memory.

Read this file to learn the wallet (the bonus rules are `wallet.bonus_rules`). Every function is
pure: it reads a `WalletState` (balances, bets, tombstones, closed rounds, bonuses, recorded
answers, block status, the time) and returns a `Decision` (the answer, and the ledger postings,
bet, round, bonus and event changes to write); `apply` then folds the decision into the state,
so the next call sees it. `wallet.engine` loads the state from PostgreSQL, runs `decide` +
`apply` for each call of a batch, and writes the decisions back in one database transaction.

The rules, as the contract and its decisions put them:

- A game call's idempotency key is (merchant, game provider, transaction id). The same key with
  the same content answers the first answer again (a replay); with any other content (another
  customer, another call type) it is refused `duplicate_transaction`, and nothing is recorded.
- Before a call is decided, a bonus of its purse past its `expires_at` is expired (booked in the
  same transaction): an expired bonus takes no bet, whatever its timer did.
- A bet draws the customer's available cash (posted minus held) first, then the bonus. A bet it
  cannot cover is refused `insufficient_funds`; a blocked customer's bet `customer_blocked`; a
  bet in a currency the customer has no wallet in `wrong_currency`; a bet in a closed round
  `round_closed`; a bet drawing on a bonus above the bonus's `max_bet` `bonus_max_bet`; a bet
  whose id a rollback already took `bet_rolled_back`. Refusals are recorded under their key: a
  replay answers the same refusal, and a rollback of a refused bet moves nothing.
- A win is split in the proportion its bet was funded: the cash-funded share to cash, the
  bonus-funded share to the bonus the bet was placed under while it is active, else to the
  merchant's bonus funding (never cash). Rounding goes to the bonus share: it never makes cash.
  A bet takes several wins until its round is closed; its first win (even of 0) settles it.
- A win with `round_closed` settles every open bet of its round (lost bets); settled bets count
  towards their bonus's wagering (`wallet.bonus_rules`). After it, a bet, win or rollback in the
  round is refused `round_closed`.
- A rollback returns the bet's cash part to cash and its bonus part where the bonus went: to the
  bonus while it is active, to cash if it completed (its rest became cash), to the merchant's
  bonus funding if it expired or was forfeited. A rollback of a settled bet is refused
  `bet_settled`; a second rollback answers the first's answer. A rollback of a bet never seen
  moves nothing and leaves a tombstone that refuses the bet if it ever arrives.
- A win or rollback must name a bet of its own customer (else `bet_not_found`; such a win is not
  recorded, so that it is taken when sent again after its bet); wins, rollbacks and credits of a
  blocked customer are taken.
- A credit (free-spin, promotion, jackpot or tournament win) pays its amount into cash from the
  merchant's promotions account, in any currency (free spins come before any deposit); it names
  no bet and no round rule applies to it.
"""

from __future__ import annotations

from dataclasses import replace

from wallet import bonus_rules, limits_check
from wallet.decisions import accept, after, merge, refuse, unrecorded
from wallet.errors import (
    BetNotFound,
    BetRolledBack,
    BetSettled,
    BonusMaxBet,
    CustomerBlocked,
    CustomerNotFound,
    DuplicateTransaction,
    RoundClosed,
    WalletError,
    WalletInsufficientFunds,
    WrongCurrency,
)
from wallet.models import (
    BONUS,
    BONUS_FUNDING,
    CASH,
    GAME,
    NO_BALANCE,
    PROMOTIONS,
    Bet,
    BetRecord,
    BetStatus,
    BonusStatus,
    Call,
    Credit,
    Decision,
    EndBonus,
    ForfeitActiveBonus,
    GameCall,
    GrantBonus,
    Purse,
    PurseKey,
    RecordedCall,
    Rollback,
    RoundKey,
    Tombstone,
    TransactionRecord,
    WalletState,
    Win,
    bet_key,
    customer_of,
    fingerprint,
    transaction_key,
)


def decide(state: WalletState, call: Call) -> Decision:
    """What `call` does, given `state`; the state is not changed (see `apply`)."""
    if customer_of(call) not in state.customers:
        return unrecorded(CustomerNotFound, f"no customer {call.customer_id}", NO_BALANCE)
    if isinstance(call, Bet | Win | Rollback | Credit):
        earlier = replay(state, call)
        if earlier is not None:
            return earlier
    expiry = bonus_rules.expiry_due(state, _purse_of(state, call))
    if expiry is None:
        return _dispatch(state, call)
    # The call sees the bonus expired: decide it on a copy of the state with the expiry applied.
    scratch = replace(state, purses=dict(state.purses), bonuses=dict(state.bonuses))
    apply(scratch, expiry)
    return merge(expiry, _dispatch(scratch, call))


def _dispatch(state: WalletState, call: Call) -> Decision:
    if isinstance(call, GrantBonus):
        return bonus_rules.grant_bonus(state, call)
    if isinstance(call, EndBonus):
        return bonus_rules.end_bonus(state, call)
    if isinstance(call, ForfeitActiveBonus):
        return bonus_rules.forfeit_active(state, call)
    if isinstance(call, Bet):
        return bet(state, call)
    if isinstance(call, Win):
        return win(state, call)
    if isinstance(call, Credit):
        return credit(state, call)
    return rollback(state, call)


def _purse_of(state: WalletState, call: Call) -> PurseKey | None:
    """The purse a call touches, when the state tells it (a win's or rollback's bet's)."""
    if isinstance(call, Bet | Credit | GrantBonus | ForfeitActiveBonus):
        return (call.merchant_id, call.customer_id, call.currency)
    if isinstance(call, EndBonus):
        bonus = state.bonuses.get(call.bonus_id)
        return bonus.purse if bonus is not None else None
    the_bet = _own_bet(state, call)
    return (call.merchant_id, call.customer_id, the_bet.currency) if the_bet else None


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
        return unrecorded(DuplicateTransaction, detail, _balance_for(state, call))
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
    if _round_key(call, call.round_id) in state.closed_rounds:
        return _refuse_bet(state, call, RoundClosed, f"round {call.round_id} is closed")
    if purse.cash + purse.bonus < call.amount:
        detail = f"the bet of {call.amount} exceeds cash {purse.cash} + bonus {purse.bonus}"
        return _refuse_bet(state, call, WalletInsufficientFunds, detail)

    cash_part = min(call.amount, max(purse.cash, 0))
    bonus_part = call.amount - cash_part
    bonus = state.active_bonus(purse_key)
    max_bet = bonus.max_bet if bonus is not None else None
    if max_bet is not None and bonus_part > 0 and call.amount > max_bet:
        detail = f"the bet of {call.amount} draws on the bonus above its max bet of {max_bet}"
        return _refuse_bet(state, call, BonusMaxBet, detail)
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
        bonus_id=bonus.id if bonus is not None else None,
    )
    decision = accept(state, call, purse_key, lines, (call.amount, cash_part, bonus_part))
    decision.bets.append((key, record))
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
    decision = refuse(state, call, refusal, detail, purse_key, call.currency)
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
    decision.bets.append((transaction_key(call), record))
    return decision


# ---------------------------------------------------------------------- wins


def win(state: WalletState, call: Win) -> Decision:
    """Pay the win in the proportion its bet was funded; a closing win settles the round."""
    the_bet = _own_bet(state, call)
    if the_bet is None:
        tombstone = state.tombstones.get(bet_key(call))
        if tombstone is not None and tombstone.customer_id == call.customer_id:
            detail = f"bet {call.bet_transaction_id} was rolled back"
            return refuse(state, call, BetRolledBack, detail, *_unknown_bet_purse(state, call))
        detail = f"no bet {call.bet_transaction_id} of customer {call.customer_id}"
        return unrecorded(BetNotFound, detail, _balance_for(state, call))
    purse_key = (call.merchant_id, call.customer_id, the_bet.currency)
    if call.currency is not None and call.currency != the_bet.currency:
        detail = f"the bet is in {the_bet.currency}, not {call.currency}"
        return refuse(state, call, WrongCurrency, detail, purse_key, the_bet.currency)
    if the_bet.status is BetStatus.rolled_back:
        detail = f"bet {call.bet_transaction_id} was rolled back"
        return refuse(state, call, BetRolledBack, detail, purse_key, the_bet.currency)
    if _round_key(call, the_bet.round_id) in state.closed_rounds:
        detail = f"round {the_bet.round_id} is closed"
        return refuse(state, call, RoundClosed, detail, purse_key, the_bet.currency)

    cash_share = call.amount * the_bet.cash_part // the_bet.amount
    bonus_share = call.amount - cash_share
    bonus_home = BONUS if bonus_rules.funding_bonus(state, the_bet) else BONUS_FUNDING
    lines = [(GAME, -call.amount), (CASH, cash_share), (bonus_home, bonus_share)]
    moved = (call.amount, cash_share, bonus_share if bonus_home is BONUS else 0)
    decision = accept(state, call, purse_key, lines, moved, round_id=the_bet.round_id)
    settled = replace(
        the_bet,
        status=BetStatus.settled,
        won=the_bet.won + call.amount,
        returned_to_bonus=the_bet.returned_to_bonus + bonus_share,
    )
    decision.bets.append((bet_key(call), settled))
    newly_settled = [the_bet] if the_bet.status is BetStatus.open else []
    if call.round_closed:
        round_key = _round_key(call, the_bet.round_id)
        decision.closed_round = (round_key, call.transaction_id)
        for key, lost in _open_bets(state, round_key):
            if key != bet_key(call):
                decision.bets.append((key, replace(lost, status=BetStatus.settled)))
                newly_settled.append(lost)
    bonus_rules.count_wagering(state, decision, newly_settled)
    return decision


def _open_bets(
    state: WalletState, round_key: RoundKey
) -> list[tuple[tuple[str, str, str], BetRecord]]:
    """The round's bets that took money and have neither a win nor a rollback."""
    merchant_id, provider, customer_id, round_id = round_key
    return [
        (key, bet)
        for key, bet in state.bets.items()
        if key[:2] == (merchant_id, provider)
        and bet.customer_id == customer_id
        and bet.round_id == round_id
        and bet.status is BetStatus.open
    ]


# ---------------------------------------------------------------------- credits


def credit(state: WalletState, call: Credit) -> Decision:
    """Pay a free-spin, promotion, jackpot or tournament win into cash from promotions."""
    purse_key = (call.merchant_id, call.customer_id, call.currency)
    lines = [(PROMOTIONS, -call.amount), (CASH, call.amount)]
    return accept(state, call, purse_key, lines, (call.amount, call.amount, 0))


# ---------------------------------------------------------------------- rollbacks


def rollback(state: WalletState, call: Rollback) -> Decision:
    """Return an open bet's money where it came from; or leave a tombstone for an unseen one."""
    the_bet = state.bets.get(bet_key(call))
    tombstone = state.tombstones.get(bet_key(call))
    owner = the_bet.customer_id if the_bet else tombstone.customer_id if tombstone else None
    if owner is not None and owner != call.customer_id:
        detail = f"no bet {call.bet_transaction_id} of customer {call.customer_id}"
        return refuse(state, call, BetNotFound, detail, *_unknown_bet_purse(state, call))
    first = the_bet.rollback_transaction_id if the_bet else None
    first = first or (tombstone.rollback_transaction_id if tombstone else None)
    if first is not None:
        return _second_rollback(state, call, first)
    if the_bet is None:
        named = state.recorded.get(bet_key(call))
        if named is not None:  # the id is a win's, a credit's...
            detail = f"transaction {call.bet_transaction_id} is a {named.type}, not a bet"
            return refuse(state, call, BetNotFound, detail, *_unknown_bet_purse(state, call))
        return _tombstone(state, call)
    purse_key = (call.merchant_id, call.customer_id, the_bet.currency)
    if call.currency is not None and call.currency != the_bet.currency:
        detail = f"the bet is in {the_bet.currency}, not {call.currency}"
        return refuse(state, call, WrongCurrency, detail, purse_key, the_bet.currency)
    if _round_key(call, the_bet.round_id) in state.closed_rounds:
        detail = f"round {the_bet.round_id} is closed"
        return refuse(state, call, RoundClosed, detail, purse_key, the_bet.currency)
    if the_bet.status is BetStatus.settled:
        detail = f"bet {call.bet_transaction_id} has a win"
        return refuse(state, call, BetSettled, detail, purse_key, the_bet.currency)
    if the_bet.status is BetStatus.refused:  # it took nothing: nothing to return
        decision = accept(state, call, purse_key, [], (0, 0, 0), round_id=the_bet.round_id)
    else:
        decision = _return_stake(state, call, the_bet, purse_key)
    status = BetStatus.rolled_back if the_bet.status is BetStatus.open else the_bet.status
    rolled_back = replace(the_bet, status=status, rollback_transaction_id=call.transaction_id)
    decision.bets.append((bet_key(call), rolled_back))
    return decision


def _return_stake(
    state: WalletState, call: Rollback, the_bet: BetRecord, purse_key: PurseKey
) -> Decision:
    """The bet's parts back where they came from; its bonus part where its bonus went."""
    bonus = state.bonuses.get(the_bet.bonus_id) if the_bet.bonus_id else None
    status = bonus.status if bonus is not None else None
    to_bonus = the_bet.bonus_part if status is BonusStatus.active else 0
    to_cash = the_bet.cash_part + (the_bet.bonus_part if status is BonusStatus.completed else 0)
    to_funding = the_bet.bonus_part - to_bonus - (to_cash - the_bet.cash_part)
    lines = [(GAME, -the_bet.amount), (CASH, to_cash), (BONUS, to_bonus)]
    lines.append((BONUS_FUNDING, to_funding))
    moved = (the_bet.amount, to_cash, to_bonus)
    return accept(state, call, purse_key, lines, moved, round_id=the_bet.round_id)


def _tombstone(state: WalletState, call: Rollback) -> Decision:
    """A rollback of a bet never seen: 200, nothing moved, and the bet refused if it comes."""
    purse_key, _ = _unknown_bet_purse(state, call)
    decision = accept(state, call, purse_key, [], (0, 0, 0))
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


# ---------------------------------------------------------------------- folding a decision in


def apply(state: WalletState, decision: Decision) -> None:
    """Fold a decision into the state, so that the next call of the batch sees it."""
    for posting in decision.postings:
        purse_key = (posting.merchant_id, posting.customer_id, posting.currency)
        state.purses[purse_key] = after(state.purses.get(purse_key, Purse()), [posting])
    record = decision.record
    if record is not None:
        state.recorded[record.key] = RecordedCall(
            record.customer_id, record.type, record.request_hash, record.outcome, record.answer
        )
    for key, bet_record in decision.bets:
        state.bets[key] = bet_record
    if decision.tombstone is not None:
        state.tombstones[decision.tombstone[0]] = decision.tombstone[1]
    if decision.closed_round is not None:
        state.closed_rounds.add(decision.closed_round[0])
    for bonus in decision.bonuses:
        state.bonuses[bonus.id] = bonus
    limits_check.fold(state, decision)


# ---------------------------------------------------------------------- the pieces


def _round_key(call: Bet | Win | Rollback, round_id: str) -> RoundKey:
    return (call.merchant_id, call.game_provider, call.customer_id, round_id)


def _own_bet(state: WalletState, call: Win | Rollback) -> BetRecord | None:
    """The bet the call names, if it is the call's customer's and it took money (or tried)."""
    the_bet = state.bets.get(bet_key(call))
    if the_bet is None or the_bet.customer_id != call.customer_id:
        return None
    if the_bet.status is BetStatus.refused:
        return None
    return the_bet


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
    if isinstance(call, Bet | Credit):
        purse = state.purses.get((call.merchant_id, call.customer_id, call.currency))
        return purse.balance() if purse else NO_BALANCE
    the_bet = _own_bet(state, call)
    if the_bet is not None:
        purse = state.purses.get((call.merchant_id, call.customer_id, the_bet.currency))
        return purse.balance() if purse else NO_BALANCE
    purse_key, _ = _unknown_bet_purse(state, call)
    purse = state.purses.get(purse_key) if purse_key else None
    return purse.balance() if purse else NO_BALANCE
