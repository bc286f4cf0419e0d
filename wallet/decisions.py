"""How the wallet's rules write a decision: a call's answer, its record, postings and event.

The pieces `wallet.rules` and `wallet.bonus_rules` build their decisions from; pure functions of
the state they are given, like the rules.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ledger.models import AccountKind
from wallet.errors import WalletError
from wallet.models import (
    ACCEPTED,
    BONUS,
    CASH,
    NO_BALANCE,
    Bet,
    Credit,
    Decision,
    EventSpec,
    GameCall,
    Posting,
    Purse,
    PurseKey,
    TransactionRecord,
    WalletState,
    fingerprint,
    transaction_key,
)

Lines = list[tuple[AccountKind, int]]


def accept(
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
            posting(
                ledger_key,
                call.merchant_id,
                call.customer_id,
                currency,
                moving,
                f"game {call.type}",
                metadata,
            )
        )
    # A credit may open the purse (its cash account was made for it): an empty purse then.
    balance = NO_BALANCE
    if purse_key is not None:
        balance = after(state.purses.get(purse_key, Purse()), postings).balance()
    if isinstance(call, Bet | Credit):
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
        "bet_transaction_id": named_bet(call),
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


def refuse(
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
    amount = getattr(call, "amount", 0)
    round_id = call.round_id if isinstance(call, Bet | Credit) else None
    record = _record(call, refusal.code, answer, (amount, 0, 0), currency, round_id, None)
    return Decision(refusal.code, answer, record=record)


def unrecorded(refusal: type[WalletError], detail: str, balance: dict[str, int]) -> Decision:
    """A refusal that records nothing: its call's key stays free (or stays the first's)."""
    assert refusal.code is not None
    return Decision(refusal.code, {"code": refusal.code, "detail": detail, "balance": balance})


def named_bet(call: GameCall) -> str | None:
    """The bet a win or rollback names; None for a bet or a credit."""
    return None if isinstance(call, Bet | Credit) else call.bet_transaction_id


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
        bet_transaction_id=named_bet(call),
        round_id=round_id,
        ledger_key=ledger_key,
    )


def posting(
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


def after(purse: Purse | None, postings: list[Posting]) -> Purse:
    """The purse once the postings' lines on the customer's accounts are applied."""
    result = replace(purse) if purse is not None else Purse()
    for each in postings:
        for kind, amount in each.lines:
            if kind is CASH:
                result.cash_posted += amount
            elif kind is BONUS:
                result.bonus += amount
    return result


def rebalance_answer(decision: Decision, purse_before: Purse) -> None:
    """The call's answer shows the balance after everything it did (a completion included)."""
    if decision.record is None or "balance" not in decision.answer:
        return
    answer = {**decision.answer, "balance": after(purse_before, decision.postings).balance()}
    decision.answer = answer
    decision.record = replace(decision.record, answer=answer)
    decision.events = [
        replace(event, object=answer) if event.type == "wallet.transaction" else event
        for event in decision.events
    ]


def merge(first: Decision, then: Decision) -> Decision:
    """One decision doing `first`'s changes (a bonus's expiry booked on the way), then `then`'s,
    and answering `then`'s answer."""
    return replace(
        then,
        postings=first.postings + then.postings,
        bets=first.bets + then.bets,
        bonuses=first.bonuses + then.bonuses,
        events=first.events + then.events,
    )
