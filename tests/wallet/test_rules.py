"""The wallet's rules in memory: each rule of the contract, call by call, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from wallet.models import (
    BONUS,
    BONUS_FUNDING,
    CASH,
    GAME,
    Bet,
    BonusStatus,
    Call,
    Decision,
    EndBonus,
    GrantBonus,
    Purse,
    Rollback,
    WalletState,
    Win,
)
from wallet.rules import apply, decide

M, C, P = "mer_test", "cus_1", "prov"
EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)


class Wallet:
    """A customer's state and the calls made on it, as the engine runs them."""

    def __init__(self, cash: int = 0, currency: str = "EUR") -> None:
        self.state = WalletState(customers={(M, C)})
        self.state.purses[(M, C, currency)] = Purse(cash_posted=cash)
        self.counter = 0

    def call(self, call: Call) -> Decision:
        decision = decide(self.state, call)
        apply(self.state, decision)
        return decision

    def id(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def bet(self, amount: int, tx: str | None = None, round_id: str = "r1", **kw: Any) -> Decision:
        fields = {"customer_id": C, "game_id": "g", "currency": "EUR", **kw}
        return self.call(
            Bet(
                M,
                game_provider=P,
                transaction_id=tx or self.id(),
                round_id=round_id,
                amount=amount,
                **fields,
            )
        )

    def win(self, bet: str, amount: int, tx: str | None = None, **kw: Any) -> Decision:
        fields = {"customer_id": C, **kw}
        return self.call(
            Win(
                M,
                game_provider=P,
                transaction_id=tx or self.id(),
                bet_transaction_id=bet,
                amount=amount,
                **fields,
            )
        )

    def rollback(self, bet: str, tx: str | None = None, **kw: Any) -> Decision:
        fields = {"customer_id": C, **kw}
        return self.call(
            Rollback(
                M, game_provider=P, transaction_id=tx or self.id(), bet_transaction_id=bet, **fields
            )
        )

    def grant(self, amount: int, multiplier: int, bonus_id: str = "bon_1") -> Decision:
        return self.call(GrantBonus(M, C, bonus_id, amount, "EUR", multiplier, EXPIRES))

    @property
    def purse(self) -> Purse:
        return self.state.purses[(M, C, "EUR")]


def lines(decision: Decision) -> list[list[tuple[str, int]]]:
    return [[(str(kind), amount) for kind, amount in p.lines] for p in decision.postings]


def test_bet_then_win_moves_cash_through_the_game() -> None:
    wallet = Wallet(cash=1_000)
    bet = wallet.bet(300, tx="b1")
    assert bet.accepted and bet.answer["balance"] == {"cash": 700, "bonus": 0, "total": 700}
    assert lines(bet) == [[(CASH, -300), (GAME, 300)]]
    won = wallet.win("b1", 500)
    assert won.answer["cash_part"] == 500 and won.answer["balance"]["cash"] == 1_200
    assert lines(won) == [[(GAME, -500), (CASH, 500)]]
    assert [e.type for e in bet.events + won.events] == ["wallet.transaction"] * 2


def test_replay_answers_the_first_answer_and_other_content_is_a_duplicate() -> None:
    wallet = Wallet(cash=1_000)
    first = wallet.bet(300, tx="b1")
    again = wallet.bet(300, tx="b1")
    assert again.replayed and again.answer == first.answer and not again.postings
    other = wallet.bet(301, tx="b1")
    assert other.outcome == "duplicate_transaction" and other.record is None
    as_win = wallet.win("b1", 10, tx="b1")
    assert as_win.outcome == "duplicate_transaction"
    assert wallet.purse.cash == 700


def test_insufficient_funds_books_nothing_and_its_rollback_moves_nothing() -> None:
    wallet = Wallet(cash=100)
    refused = wallet.bet(101, tx="b1")
    assert refused.outcome == "insufficient_funds" and not refused.postings
    assert refused.answer["balance"] == {"cash": 100, "bonus": 0, "total": 100}
    assert wallet.bet(101, tx="b1").outcome == "insufficient_funds"  # its replay
    rolled = wallet.rollback("b1")
    assert rolled.accepted and rolled.answer["amount"] == 0 and not rolled.postings
    assert wallet.win("b1", 5).outcome == "bet_not_found"
    assert wallet.purse.cash == 100


def test_bonus_split_and_win_back_into_bonus() -> None:
    wallet = Wallet(cash=30)
    wallet.grant(100, multiplier=10)
    bet = wallet.bet(50, tx="b1")
    assert (bet.answer["cash_part"], bet.answer["bonus_part"]) == (30, 20)
    assert bet.answer["balance"] == {"cash": 0, "bonus": 80, "total": 80}
    won = wallet.win("b1", 100)
    assert (won.answer["cash_part"], won.answer["bonus_part"]) == (80, 20)
    assert won.answer["balance"] == {"cash": 80, "bonus": 100, "total": 180}
    assert wallet.state.bonuses["bon_1"].wagering_remaining == 950
    # a second win of the same bet returns nothing more to bonus: the bet took 20 from it
    again = wallet.win("b1", 10)
    assert (again.answer["cash_part"], again.answer["bonus_part"]) == (10, 0)
    assert wallet.state.bonuses["bon_1"].wagering_remaining == 950  # settled once


def test_wagering_completes_the_bonus_into_cash_in_the_settling_win() -> None:
    wallet = Wallet(cash=0)
    wallet.grant(100, multiplier=1)
    wallet.bet(60, tx="b1")
    wallet.win("b1", 0)
    assert wallet.state.bonuses["bon_1"].wagering_remaining == 40
    wallet.bet(40, tx="b2")
    done = wallet.win("b2", 10)
    assert done.bonus is not None and done.bonus.status is BonusStatus.completed
    assert [e.type for e in done.events] == ["wallet.transaction", "bonus.completed"]
    assert done.answer["balance"] == {"cash": 10, "bonus": 0, "total": 10}
    assert wallet.purse == Purse(cash_posted=10, bonus=0)
    # with no bonus active, a win goes to cash, a rollback of bonus money to the funding
    wallet.bet(10, tx="b3")
    assert wallet.win("b3", 4).answer["cash_part"] == 4


def test_rollback_after_the_bonus_ended_returns_bonus_money_to_the_funding() -> None:
    wallet = Wallet(cash=0)
    wallet.grant(100, multiplier=5)
    wallet.bet(30, tx="b1")
    ended = wallet.call(EndBonus(M, C, "bon_1", "expired"))
    assert lines(ended) == [[(BONUS, -70), (BONUS_FUNDING, 70)]]
    rolled = wallet.rollback("b1")
    assert lines(rolled) == [[(GAME, -30), (BONUS_FUNDING, 30)]]
    assert (rolled.answer["amount"], rolled.answer["bonus_part"]) == (30, 0)
    assert wallet.purse.bonus == 0


def test_rollback_of_an_unseen_bet_leaves_a_tombstone() -> None:
    wallet = Wallet(cash=100)
    rolled = wallet.rollback("b1", tx="r1")
    assert rolled.accepted and rolled.answer["amount"] == 0 and rolled.tombstone
    assert rolled.answer["currency"] == "EUR"  # the customer's only wallet
    late = wallet.bet(10, tx="b1")
    assert late.outcome == "bet_rolled_back" and wallet.purse.cash == 100
    assert wallet.win("b1", 10).outcome == "bet_rolled_back"
    second = wallet.rollback("b1", tx="r2")
    assert second.replayed and second.answer == rolled.answer


def test_rollback_then_its_replay_and_a_second_rollback() -> None:
    wallet = Wallet(cash=100)
    wallet.bet(40, tx="b1")
    first = wallet.rollback("b1", tx="r1")
    assert lines(first) == [[(GAME, -40), (CASH, 40)]]
    assert wallet.rollback("b1", tx="r1").replayed
    second = wallet.rollback("b1", tx="r2")
    assert second.replayed and second.answer == first.answer and not second.postings
    assert wallet.win("b1", 5).outcome == "bet_rolled_back"
    assert wallet.purse.cash == 100


def test_rollback_after_a_win_is_refused() -> None:
    wallet = Wallet(cash=100)
    wallet.bet(40, tx="b1")
    wallet.win("b1", 0)
    refused = wallet.rollback("b1")
    assert refused.outcome == "bet_settled" and refused.answer["balance"]["cash"] == 60


def test_round_closed_by_a_win_refuses_bets_and_wins_in_it() -> None:
    wallet = Wallet(cash=100)
    wallet.bet(10, tx="b1", round_id="R")
    wallet.bet(10, tx="b2", round_id="R")
    assert wallet.win("b1", 5, round_closed=True).accepted
    assert wallet.bet(10, round_id="R").outcome == "round_closed"
    assert wallet.win("b2", 5).outcome == "round_closed"
    assert wallet.rollback("b2").accepted  # an unsettled bet of a closed round rolls back
    assert wallet.purse.cash == 100 - 10 + 5


def test_blocked_customer_bets_refused_wins_and_rollbacks_taken() -> None:
    wallet = Wallet(cash=100)
    wallet.bet(10, tx="b1")
    wallet.bet(10, tx="b2")
    wallet.state.blocked.add((M, C))
    assert wallet.bet(10).outcome == "customer_blocked"
    assert wallet.win("b1", 30).accepted
    assert wallet.rollback("b2").accepted
    assert wallet.purse.cash == 120


def test_win_must_name_a_bet_of_its_customer() -> None:
    wallet = Wallet(cash=100)
    wallet.state.customers.add((M, "cus_2"))
    wallet.bet(10, tx="b1")
    assert wallet.win("nope", 5).outcome == "bet_not_found"
    assert wallet.win("b1", 5, customer_id="cus_2").outcome == "bet_not_found"
    assert wallet.rollback("b1", customer_id="cus_2").outcome == "bet_not_found"


def test_wrong_currency_and_unknown_customer() -> None:
    wallet = Wallet(cash=100)
    assert wallet.bet(10, currency="USD").outcome == "wrong_currency"
    unknown = wallet.bet(10, customer_id="cus_9")
    assert unknown.outcome == "customer_not_found" and unknown.record is None


def test_one_active_bonus_and_a_multiplier_of_zero_is_cash_at_once() -> None:
    wallet = Wallet(cash=0)
    wallet.grant(100, multiplier=2)
    assert wallet.grant(50, multiplier=2, bonus_id="bon_2").outcome == "bonus_already_active"
    wallet.call(EndBonus(M, C, "bon_1", "forfeited", "abuse"))
    granted = wallet.grant(50, multiplier=0, bonus_id="bon_3")
    assert granted.answer["status"] == "completed"
    assert wallet.purse == Purse(cash_posted=50, bonus=0)
    assert [e.type for e in granted.events] == ["bonus.created", "bonus.completed"]
    assert granted.answer["expires_at"] == (EXPIRES + timedelta(0)).isoformat().replace(
        "+00:00", "Z"
    )
