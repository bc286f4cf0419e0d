"""The wallet's rules in memory: each rule of the contract, call by call, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from wallet.models import (
    BONUS,
    BONUS_FUNDING,
    CASH,
    GAME,
    PROMOTIONS,
    Bet,
    BonusStatus,
    Call,
    Credit,
    Decision,
    EndBonus,
    ForfeitActiveBonus,
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
    won = wallet.win("b1", 100)  # funded 30/50 cash, 20/50 bonus
    assert (won.answer["cash_part"], won.answer["bonus_part"]) == (60, 40)
    assert won.answer["balance"] == {"cash": 60, "bonus": 120, "total": 180}
    assert wallet.state.bonuses["bon_1"].wagering_remaining == 950
    # a second win of the same bet is split the same way; rounding goes to the bonus
    again = wallet.win("b1", 11)
    assert (again.answer["cash_part"], again.answer["bonus_part"]) == (6, 5)
    assert wallet.state.bonuses["bon_1"].wagering_remaining == 950  # settled once


def test_winnings_of_bonus_money_stay_bonus_and_are_forfeited_once_it_ended() -> None:
    wallet = Wallet(cash=0)
    wallet.grant(100, multiplier=10)
    wallet.bet(100, tx="b1")
    won = wallet.win("b1", 5_000)
    assert (won.answer["cash_part"], won.answer["bonus_part"]) == (0, 5_000)
    assert won.answer["balance"] == {"cash": 0, "bonus": 5_000, "total": 5_000}
    wallet.bet(100, tx="b2")
    wallet.call(EndBonus(M, C, "bon_1", "forfeited", "abuse"))
    late = wallet.win("b2", 700)  # its bonus ended mid-round: the share is the merchant's
    assert lines(late) == [[(GAME, -700), (BONUS_FUNDING, 700)]]
    assert (late.answer["cash_part"], late.answer["bonus_part"]) == (0, 0)
    assert wallet.purse == Purse(cash_posted=0, bonus=0)


def test_a_bet_under_an_ended_bonus_does_not_feed_the_next_bonus() -> None:
    wallet = Wallet(cash=0)
    wallet.grant(100, multiplier=10)
    wallet.bet(50, tx="b1")
    wallet.call(EndBonus(M, C, "bon_1", "expired"))
    wallet.grant(30, multiplier=10, bonus_id="bon_2")
    won = wallet.win("b1", 90)
    assert lines(won) == [[(GAME, -90), (BONUS_FUNDING, 90)]]
    assert wallet.state.bonuses["bon_2"].wagering_remaining == 300  # not its bet
    assert wallet.purse == Purse(cash_posted=0, bonus=30)


def test_a_bonus_past_its_expiry_takes_no_bet_whatever_its_timer_did() -> None:
    wallet = Wallet(cash=10)
    wallet.grant(100, multiplier=10)
    wallet.state.now = EXPIRES + timedelta(seconds=1)
    refused = wallet.bet(50, tx="b1")
    assert refused.outcome == "insufficient_funds"
    assert refused.answer["balance"] == {"cash": 10, "bonus": 0, "total": 10}
    assert lines(refused) == [[(BONUS, -100), (BONUS_FUNDING, 100)]]
    assert [e.type for e in refused.events] == ["bonus.expired"]
    assert wallet.state.bonuses["bon_1"].status is BonusStatus.expired
    timer = wallet.call(EndBonus(M, C, "bon_1", "expired"))
    assert timer.replayed and timer.answer["status"] == "expired" and not timer.postings


def test_max_bet_refuses_a_bet_drawing_on_the_bonus_above_it() -> None:
    wallet = Wallet(cash=100)
    wallet.call(GrantBonus(M, C, "bon_1", 500, "EUR", 10, EXPIRES, max_bet=150))
    assert wallet.bet(200).accepted is False  # 100 cash + 100 bonus
    assert wallet.bet(200, tx="big").outcome == "bonus_max_bet"
    assert wallet.bet(100).accepted  # all cash: no bonus drawn
    assert wallet.bet(150).answer["bonus_part"] == 150
    assert wallet.purse == Purse(cash_posted=0, bonus=350)


def test_a_withdrawal_request_forfeits_the_active_bonus() -> None:
    wallet = Wallet(cash=100)
    wallet.grant(80, multiplier=3)
    forfeited = wallet.call(ForfeitActiveBonus(M, C, "EUR"))
    assert forfeited.answer["status"] == "forfeited"
    assert lines(forfeited) == [[(BONUS, -80), (BONUS_FUNDING, 80)]]
    none = wallet.call(ForfeitActiveBonus(M, C, "EUR"))
    assert none.answer == {"bonus": None} and not none.postings


def test_credits_pay_cash_from_promotions_and_replay() -> None:
    wallet = Wallet(cash=0)
    wallet.state.blocked.add((M, C))
    call = Credit(M, C, P, "fs-1", "free_spin_win", 250, "EUR", "g", "fs-round")
    paid = wallet.call(call)
    assert paid.accepted and lines(paid) == [[(PROMOTIONS, -250), (CASH, 250)]]
    assert paid.answer["type"] == "free_spin_win" and paid.answer["round_id"] == "fs-round"
    assert wallet.call(call).replayed
    other = wallet.call(replace(call, type="jackpot_win"))
    assert other.outcome == "duplicate_transaction"
    usd = wallet.call(replace(call, transaction_id="fs-2", currency="USD"))
    assert usd.accepted and usd.answer["balance"] == {"cash": 250, "bonus": 0, "total": 250}
    assert wallet.purse.cash == 250


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


def test_a_rollback_naming_a_win_or_a_credit_is_refused_not_a_tombstone() -> None:
    wallet = Wallet(cash=100)
    wallet.bet(40, tx="b1")
    wallet.win("b1", 70, tx="w1")
    wallet.call(Credit(M, C, P, "fs1", "free_spin_win", 5, "EUR"))
    of_win = wallet.rollback("w1")
    of_credit = wallet.rollback("fs1")
    assert (of_win.outcome, of_credit.outcome) == ("bet_not_found", "bet_not_found")
    assert not of_win.tombstone and wallet.purse.cash == 135


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
    assert wallet.rollback("b2").outcome == "round_closed"  # settled, as a lost bet
    assert wallet.purse.cash == 100 - 20 + 5


def test_a_closing_win_settles_the_round_and_its_lost_bets_count_towards_wagering() -> None:
    wallet = Wallet(cash=0)
    wallet.grant(100, multiplier=2)
    wallet.bet(30, tx="b1", round_id="R")
    wallet.bet(20, tx="b2", round_id="R")
    wallet.bet(10, tx="b3", round_id="other")
    closing = wallet.win("b1", 0, round_closed=True)
    assert wallet.state.bonuses["bon_1"].wagering_remaining == 150  # b1 and b2
    assert {key[2]: bet.status for key, bet in closing.bets} == {"b1": "settled", "b2": "settled"}
    assert wallet.rollback("b3").accepted


def test_a_win_on_an_unknown_bet_is_not_recorded_and_is_taken_after_its_bet() -> None:
    wallet = Wallet(cash=100)
    early = wallet.win("b1", 40, tx="w1")
    assert early.outcome == "bet_not_found" and early.record is None
    wallet.bet(10, tx="b1")
    late = wallet.win("b1", 40, tx="w1")
    assert late.accepted and not late.replayed and wallet.purse.cash == 130


def test_rollback_after_the_bonus_completed_returns_its_bonus_part_to_cash() -> None:
    wallet = Wallet(cash=0)
    wallet.grant(100, multiplier=1)
    wallet.bet(30, tx="open", round_id="a")
    wallet.bet(70, tx="b2", round_id="b")
    wallet.win("b2", 100)  # all bonus-funded: 100 back to the bonus; 30 left to wager
    wallet.bet(30, tx="b3", round_id="c")
    done = wallet.win("b3", 0)
    assert done.bonus is not None and done.bonus.status is BonusStatus.completed
    assert wallet.purse == Purse(cash_posted=70, bonus=0)
    rolled = wallet.rollback("open")
    assert lines(rolled) == [[(GAME, -30), (CASH, 30)]]
    assert (rolled.answer["cash_part"], rolled.answer["bonus_part"]) == (30, 0)


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
