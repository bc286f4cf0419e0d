"""Model-based test: random sequences of wallet calls, on the real engine, agree with a small model.

The model below is written from the contract's rules, independently of `wallet.rules`: plain
dicts of cash, bonus, bonuses, bets, tombstones, closed rounds and recorded answers: the
proportional split of wins, bonus expiry booked by the next call, the round settled by its
closing win, credits, max bet, the forfeit of a withdrawal request, late wins taken after their
bet (`--hypothesis-show-statistics` counts the cases a run met, through `event`). Calls are sent one at
a time and in concurrent bursts (which the engine commits in shared batches); each answer's
outcome, parts and balance must be the model's, and the ledger's balances too. The ledger audit
(with the wallet's checks) must be clean after the run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger
from ledger.models import AccountKind
from paysaga.database import open_pool
from tests.wallet.conftest import Books, wallet_audit
from wallet.engine import WalletEngine
from wallet.models import (
    Bet,
    Credit,
    Decision,
    EndBonus,
    ForfeitActiveBonus,
    GrantBonus,
    Rollback,
    Win,
)

T = TypeVar("T")
P = "prov"
CUSTOMERS = (0, 1)
customers = st.sampled_from(CUSTOMERS)
rounds = st.sampled_from(["r0", "r1", "r2"])
picks = st.integers(0, 10_000)
rarely = st.sampled_from([False, False, False, True])
sometimes = st.sampled_from([False, False, True])
# bet amounts, with the bonuses' max bets (20, 60) and the amounts just past them
amounts = st.one_of(st.integers(1, 200), st.sampled_from([20, 21, 30, 60, 61, 70]))
CREDIT_TYPES = ["free_spin_win", "promo_win", "jackpot_win", "tournament_win"]


@dataclass
class ModelBet:
    customer: int
    amount: int
    cash: int
    bonus: int
    round: str
    status: str  # open, settled, rolled_back, refused
    bonus_id: str | None = None  # the bonus active when it was placed
    first_rollback: str | None = None


@dataclass
class ModelBonus:
    customer: int
    status: str  # active, completed, expired, forfeited
    wagering: int
    max_bet: int | None
    due: bool  # past its expiry: the next call on its purse expires it


@dataclass
class Expected:
    """What the model says a call answers."""

    outcome: str
    parts: tuple[int, int] | None = None  # (cash_part, bonus_part) when accepted
    replay_of: str | None = None  # the call whose answer it repeats
    recorded: bool = True  # False: a refusal that books nothing (its id stays free)


@dataclass
class Model:
    cash: dict[int, int] = field(default_factory=dict)
    bonus: dict[int, int] = field(default_factory=dict)
    active: dict[int, str | None] = field(default_factory=dict)  # the active bonus's id
    bonuses: dict[str, ModelBonus] = field(default_factory=dict)
    bets: dict[str, ModelBet] = field(default_factory=dict)
    tombstones: dict[str, tuple[int, str]] = field(default_factory=dict)
    closed: set[tuple[int, str]] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    loss_limit: dict[int, int] = field(default_factory=dict)  # a day's limit; absent: none
    losses: dict[int, int] = field(default_factory=dict)  # bets minus their wins (all today)

    # ------------------------------------------------------------ bonuses

    def expire_if_due(self, customer: int) -> None:
        """A call on the customer's purse first expires a bonus past its expiry."""
        bonus_id = self.active[customer]
        if bonus_id is not None and self.bonuses[bonus_id].due:
            event("bonus expired by a call, not its timer")
            self._end(customer, "expired")

    def _end(self, customer: int, status: str) -> None:
        bonus_id = self.active[customer]
        assert bonus_id is not None
        self.bonuses[bonus_id].status = status
        self.bonus[customer] = 0
        self.active[customer] = None

    def _complete(self, customer: int) -> None:
        self.cash[customer] += self.bonus[customer]
        self._end(customer, "completed")

    def grant(self, customer: int, bonus_id: str, amount: int, multiplier: int, **kw: Any) -> str:
        self.expire_if_due(customer)
        if self.active[customer] is not None:
            return "bonus_already_active"
        self.bonuses[bonus_id] = ModelBonus(customer, "active", amount * multiplier, **kw)
        self.active[customer] = bonus_id
        self.bonus[customer] += amount
        if amount * multiplier == 0:
            self._complete(customer)
        return "accepted"

    def end(self, customer: int, bonus_id: str, status: str) -> str:
        """The bonus's timer or an operator; the status it answers."""
        self.expire_if_due(customer)
        if self.active[customer] == bonus_id:
            self._end(customer, status)
        return self.bonuses[bonus_id].status

    def forfeit_on_withdrawal(self, customer: int) -> str | None:
        self.expire_if_due(customer)
        if self.active[customer] is None:
            return None
        self._end(customer, "forfeited")
        return "forfeited"

    def _count(self, customer: int, settled: list[ModelBet]) -> None:
        """Settled bets count towards their bonus while it is active; wagered, it is cash."""
        bonus_id = self.active[customer]
        wagered = sum(b.amount for b in settled if bonus_id and b.bonus_id == bonus_id)
        if bonus_id is None or not wagered:
            return
        bonus = self.bonuses[bonus_id]
        bonus.wagering = max(bonus.wagering - wagered, 0)
        if bonus.wagering == 0:
            event("bonus completed by wagering")
            self._complete(customer)

    def _funded_by_active(self, bet: ModelBet) -> bool:
        return bet.bonus_id is not None and self.active[bet.customer] == bet.bonus_id

    # ------------------------------------------------------------ game calls

    def bet(self, customer: int, tx: str, amount: int, round_id: str) -> Expected:
        self.expire_if_due(customer)
        if tx in self.tombstones:
            self.bets[tx] = ModelBet(customer, amount, 0, 0, round_id, "refused")
            self.bets[tx].first_rollback = self.tombstones[tx][1]
            return Expected("bet_rolled_back")
        cash = min(amount, self.cash[customer])
        bonus = amount - cash
        active = self.active[customer]
        max_bet = self.bonuses[active].max_bet if active else None
        refusal = None
        if customer in self.blocked:
            refusal = "customer_blocked"
        elif customer in self.loss_limit and (
            self.losses.get(customer, 0) + amount > self.loss_limit[customer]
        ):
            refusal = "loss_limit_reached"
        elif (customer, round_id) in self.closed:
            refusal = "round_closed"
        elif self.cash[customer] + self.bonus[customer] < amount:
            refusal = "insufficient_funds"
        elif max_bet is not None and bonus > 0 and amount > max_bet:
            refusal = "bonus_max_bet"
        if refusal:
            self.bets[tx] = ModelBet(customer, amount, 0, 0, round_id, "refused")
            return Expected(refusal)
        self.cash[customer] -= cash
        self.bonus[customer] -= bonus
        self.bets[tx] = ModelBet(customer, amount, cash, bonus, round_id, "open", active)
        self.losses[customer] = self.losses.get(customer, 0) + amount
        return Expected("accepted", (cash, bonus))

    def win(self, customer: int, bet_id: str, amount: int, closes: bool) -> Expected:
        bet = self.bets.get(bet_id)
        if bet is None or bet.customer != customer or bet.status == "refused":
            tomb = self.tombstones.get(bet_id)  # rolled back before it came (if it ever did)
            if tomb is not None and tomb[0] == customer:
                return Expected("bet_rolled_back")
            return Expected("bet_not_found", recorded=False)
        self.expire_if_due(customer)
        if bet.status == "rolled_back":
            return Expected("bet_rolled_back")
        if (customer, bet.round) in self.closed:
            return Expected("round_closed")
        cash_share = amount * bet.cash // bet.amount
        bonus_share = amount - cash_share
        to_bonus = bonus_share if self._funded_by_active(bet) else 0
        if bonus_share and not to_bonus:
            event("bonus share of a win forfeited: its bonus ended")
        if bet.cash and bet.bonus and amount:
            event("win of a bet funded by both cash and bonus")
        self.cash[customer] += cash_share
        self.bonus[customer] += to_bonus
        self.losses[customer] = self.losses.get(customer, 0) - amount
        settled = [bet] if bet.status == "open" else []
        bet.status = "settled"
        if closes:
            self.closed.add((customer, bet.round))
            for other in self.bets.values():
                if (other.customer, other.round, other.status) == (customer, bet.round, "open"):
                    event("a closing win settled a lost bet of its round")
                    other.status = "settled"
                    settled.append(other)
        self._count(customer, settled)
        return Expected("accepted", (cash_share, to_bonus))

    def rollback(self, customer: int, tx: str, bet_id: str) -> Expected:
        bet = self.bets.get(bet_id)
        tomb = self.tombstones.get(bet_id)
        owner = bet.customer if bet else tomb[0] if tomb else None
        if owner is not None and owner != customer:
            return Expected("bet_not_found")
        if bet is not None and bet.status != "refused":
            self.expire_if_due(customer)
        first = (bet.first_rollback if bet else None) or (tomb[1] if tomb else None)
        if first is not None:
            return Expected("accepted", replay_of=first)
        if bet is None:
            self.tombstones[bet_id] = (customer, tx)
            return Expected("accepted", (0, 0))
        if (customer, bet.round) in self.closed:
            return Expected("round_closed")
        if bet.status == "settled":
            return Expected("bet_settled")
        bet.first_rollback = tx
        if bet.status == "refused":
            return Expected("accepted", (0, 0))
        bet.status = "rolled_back"
        self.losses[customer] = self.losses.get(customer, 0) - bet.amount
        status = self.bonuses[bet.bonus_id].status if bet.bonus_id else None
        to_bonus = bet.bonus if status == "active" else 0
        to_cash = bet.cash + (bet.bonus if status == "completed" else 0)
        if bet.bonus and status != "active":
            event(f"rollback of bonus money after its bonus was {status}")
        self.cash[customer] += to_cash
        self.bonus[customer] += to_bonus
        return Expected("accepted", (to_cash, to_bonus))

    def credit(self, customer: int, amount: int) -> Expected:
        self.expire_if_due(customer)
        self.cash[customer] += amount
        return Expected("accepted", (amount, 0))

    def balance(self, customer: int) -> dict[str, int]:
        cash, bonus = self.cash[customer], self.bonus[customer]
        return {"cash": cash, "bonus": bonus, "total": cash + bonus}


@dataclass
class Sent:
    """A call that was recorded under its transaction id, and its answer."""

    call: Bet | Win | Rollback | Credit
    decision: Decision


class WalletMachine(RuleBasedStateMachine):
    """Drives the real engine (on a private event loop) beside the model."""

    def __init__(self, loop: asyncio.AbstractEventLoop, engine: WalletEngine, books: Books) -> None:
        super().__init__()
        self.loop, self.engine, self.books = loop, engine, books
        self.model = Model()
        self.merchant = ""
        self.customers: list[str] = []
        self.bonus_ids: dict[int, str] = {}
        self.sent: dict[str, Sent] = {}
        self.not_found: list[tuple[int, str, str, int]] = []  # unrecorded wins: retried later
        self.counter = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def tx(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    @initialize(
        cash=st.lists(st.integers(0, 150), min_size=2, max_size=2),
        bonus=st.lists(st.integers(0, 300), min_size=2, max_size=2),
        multiplier=st.integers(1, 4),
        max_bet=st.sampled_from([None, 20, 60]),
        loss_limit=st.one_of(st.none(), st.integers(0, 200)),
    )
    def open_books(
        self,
        cash: list[int],
        bonus: list[int],
        multiplier: int,
        max_bet: int | None,
        loss_limit: int | None,
    ) -> None:
        # (the bonuses of the start expire in a day)
        """Two customers of a new merchant, with some cash and most often a bonus to play; the
        first with a day's loss limit now and then."""
        self.merchant = self.run(self.books.merchant())
        for customer, amount in zip(CUSTOMERS, cash, strict=True):
            self.customers.append(self.run(self.books.customer(self.merchant, cash=amount)))
            self.model.cash[customer] = amount
            self.model.bonus[customer] = 0
            self.model.active[customer] = None
        if loss_limit is not None:
            self.run(self.set_loss_limit(self.customers[0], loss_limit))
            self.model.loss_limit[0] = loss_limit
        for customer, amount in zip(CUSTOMERS, bonus, strict=True):
            if amount:
                self.grant_bonus(customer, amount, multiplier, max_bet, False)

    # ---------------------------------------------------------------- sending and checking

    def send(self, calls: list[tuple[Bet | Win | Rollback | Credit, Any]]) -> None:
        """Send the calls at once (one burst); check each against the model, in order."""
        decisions = self.run(self.submit_all([call for call, _ in calls]))
        for (call, expect), decision in zip(calls, decisions, strict=True):
            expected: Expected = expect()
            self.check(call, expected, decision)

    async def submit_all(self, calls: list[Bet | Win | Rollback | Credit]) -> list[Decision]:
        return list(await asyncio.gather(*(self.engine.submit(call) for call in calls)))

    def check(
        self, call: Bet | Win | Rollback | Credit, expected: Expected, decision: Decision
    ) -> None:
        customer = self.customers.index(call.customer_id)
        assert decision.outcome == expected.outcome, (call, decision.answer, expected)
        if expected.replay_of is not None:
            assert decision.replayed
            assert decision.answer == self.sent[expected.replay_of].decision.answer
            self.sent[call.transaction_id] = Sent(call, decision)
            return
        assert not decision.replayed, call
        event(f"{call.type} {expected.outcome}")
        if expected.parts is not None:
            if expected.parts[1]:
                event(f"{call.type} with a bonus part")
            parts = (decision.answer["cash_part"], decision.answer["bonus_part"])
            assert parts == expected.parts, (call, decision.answer)
        assert decision.answer["balance"] == self.model.balance(customer), (call, decision.answer)
        if not expected.recorded:  # its id stays free: sent again later, it is decided anew
            assert isinstance(call, Win)
            self.not_found.append(
                (customer, call.bet_transaction_id, call.transaction_id, call.amount)
            )
            return
        self.sent[call.transaction_id] = Sent(call, decision)

    def bet_call(self, customer: int, amount: int, round_id: str) -> tuple[Bet, Any]:
        tx = self.tx()
        call = Bet(self.merchant, self.customers[customer], P, tx, "g", round_id, amount, "EUR")
        return call, lambda: self.model.bet(customer, tx, amount, round_id)

    def win_call(
        self,
        customer: int,
        pick: int,
        amount: int,
        closes: bool,
        tx: str | None = None,
        bet_id: str | None = None,
    ) -> tuple[Win, Any]:
        if bet_id is None:
            bet_id = self.some_bet(customer, pick) if tx is None else self.not_found[pick][1]
        tx = tx or self.tx()
        call = Win(self.merchant, self.customers[customer], P, tx, bet_id, amount, closes)
        return call, lambda: self.model.win(customer, bet_id, amount, closes)

    def credit_call(self, customer: int, amount: int, kind: Any) -> tuple[Credit, Any]:
        call = Credit(self.merchant, self.customers[customer], P, self.tx(), kind, amount, "EUR")
        return call, lambda: self.model.credit(customer, amount)

    def rollback_call(self, customer: int, pick: int) -> tuple[Rollback, Any]:
        bet_id, tx = self.some_bet(customer, pick), self.tx()
        call = Rollback(self.merchant, self.customers[customer], P, tx, bet_id)
        return call, lambda: self.model.rollback(customer, tx, bet_id)

    def some_bet(self, customer: int, pick: int) -> str:
        """Mostly one of the customer's latest bets; sometimes another's, or one never seen."""
        if pick % 9 == 0:
            return f"unseen-{uuid.uuid4().hex[:8]}"
        bets = [tx for tx, sent in self.sent.items() if isinstance(sent.call, Bet)]
        own = [
            tx
            for tx in bets
            if self.sent[tx].call.customer_id == self.customers[customer]
            and (self.sent[tx].decision.accepted or pick % 11 == 0)
        ]
        pool = bets if pick % 7 == 0 or not own else own[-3:]
        if not pool:
            return f"unseen-{uuid.uuid4().hex[:8]}"
        return pool[pick % len(pool)]

    # ---------------------------------------------------------------- rules

    @rule(customer=customers, amount=amounts, round_id=rounds)
    def bet(self, customer: int, amount: int, round_id: str) -> None:
        self.send([self.bet_call(customer, amount, round_id)])

    @rule(customer=customers, pick=picks, amount=st.integers(0, 400), closes=sometimes)
    def win(self, customer: int, pick: int, amount: int, closes: bool) -> None:
        self.send([self.win_call(customer, pick, amount, closes)])

    @rule(customer=customers, pick=picks)
    def rollback(self, customer: int, pick: int) -> None:
        self.send([self.rollback_call(customer, pick)])

    @rule(customer=customers, pick=picks)
    def rollback_an_old_bet(self, customer: int, pick: int) -> None:
        """A bet of any age: still open (its bonus may have ended since), or settled."""
        own = [tx for tx, bet in self.model.bets.items() if bet.customer == customer]
        still_open = [tx for tx in own if self.model.bets[tx].status == "open"]
        own = still_open if still_open and pick % 4 else own
        if not own:
            return
        bet_id, tx = own[pick % len(own)], self.tx()
        call = Rollback(self.merchant, self.customers[customer], P, tx, bet_id)
        self.send([(call, lambda: self.model.rollback(customer, tx, bet_id))])

    @rule(customer=customers, bets=st.lists(amounts, min_size=2, max_size=3), won=picks)
    def round_of_bets(self, customer: int, bets: list[int], won: int) -> None:
        """Bets in a round of their own, then a win on the first that closes it."""
        round_id = f"round-{self.tx()}"
        placed: list[tuple[Bet | Win | Rollback | Credit, Any]] = [
            self.bet_call(customer, amount, round_id) for amount in bets
        ]
        self.send(placed)
        first, amount = placed[0][0].transaction_id, won % 300
        tx = self.tx()
        call = Win(self.merchant, self.customers[customer], P, tx, first, amount, True)
        self.send([(call, lambda: self.model.win(customer, first, amount, True))])

    @rule(customer=customers, amount=st.integers(1, 30))
    def bet_left_open(self, customer: int, amount: int) -> None:
        """A bet in a round of its own that no win names: it may outlive its bonus."""
        self.send([self.bet_call(customer, amount, f"held-{self.tx()}")])

    @rule(customer=customers)
    def bonus_wagered_around_an_open_bet(self, customer: int) -> None:
        """A bet partly on the bonus left open; a cash bet wagers the rest of the bonus; then the
        open bet is rolled back, its bonus completed meanwhile."""
        active = self.model.active[customer]
        if active is None or not self.model.bonus[customer] or customer in self.model.blocked:
            return
        held = self.bet_call(customer, self.model.cash[customer] + 1, f"held-{self.tx()}")
        self.send([held])
        wagering = self.model.bonuses[active].wagering if self.model.active[customer] else 0
        if wagering:
            self.deposit(customer, wagering)
            round_id = f"round-{self.tx()}"
            placed = self.bet_call(customer, wagering, round_id)
            self.send([placed])
            bet_id, tx = placed[0].transaction_id, self.tx()
            closing = Win(self.merchant, self.customers[customer], P, tx, bet_id, 0, True)
            self.send([(closing, lambda: self.model.win(customer, bet_id, 0, True))])
        held_id, tx = held[0].transaction_id, self.tx()
        call = Rollback(self.merchant, self.customers[customer], P, tx, held_id)
        self.send([(call, lambda: self.model.rollback(customer, tx, held_id))])

    @rule(customer=customers, amount=st.integers(50, 300), won=st.integers(1, 400))
    def bonus_replaced_under_an_open_bet(self, customer: int, amount: int, won: int) -> None:
        """A bet partly on the bonus left open; the bonus is forfeited and another granted; the
        bet wins: its bonus share belongs to its own bonus, not to the new one."""
        if not self.model.bonus[customer] or customer in self.model.blocked:
            return
        held = self.bet_call(customer, self.model.cash[customer] + 1, f"held-{self.tx()}")
        self.send([held])
        self.withdrawal_request(customer)
        self.grant_bonus(customer, amount, 10, None, False)
        self.send([self.win_call(customer, 0, won, False, bet_id=held[0].transaction_id)])

    @rule(customer=customers, over=st.booleans(), round_id=rounds)
    def bet_at_the_max_bet(self, customer: int, over: bool, round_id: str) -> None:
        """A bet of the active bonus's max bet, or one more."""
        active = self.model.active[customer]
        max_bet = self.model.bonuses[active].max_bet if active else None
        if max_bet is None:
            return
        self.send([self.bet_call(customer, max_bet + over, round_id)])

    @rule(customer=customers, amount=st.integers(1, 300), kind=st.sampled_from(CREDIT_TYPES))
    def credit(self, customer: int, amount: int, kind: str) -> None:
        self.send([self.credit_call(customer, amount, kind)])

    @precondition(lambda self: self.not_found)
    @rule(pick=picks, amount=st.integers(1, 200))
    def bet_then_its_early_win_again(self, pick: int, amount: int) -> None:
        """A win refused bet_not_found, sent again once its bet has come, is taken."""
        customer, bet_id, tx, won = self.not_found.pop(pick % len(self.not_found))
        if bet_id in self.model.bets or bet_id in self.model.tombstones:
            return  # that id was taken meanwhile
        call = Bet(self.merchant, self.customers[customer], P, bet_id, "g", "r0", amount, "EUR")
        self.send([(call, lambda: self.model.bet(customer, bet_id, amount, "r0"))])
        self.not_found.append((customer, bet_id, tx, won))
        self.send([self.win_call(customer, len(self.not_found) - 1, won, False, tx=tx)])
        self.not_found = [entry for entry in self.not_found if entry[2] != tx]

    @rule(
        burst=st.lists(
            st.tuples(st.sampled_from(["bet", "win", "rollback", "credit"]), customers, picks),
            min_size=2,
            max_size=8,
        )
    )
    def concurrent_calls(self, burst: list[tuple[str, int, int]]) -> None:
        calls: list[tuple[Any, Any]] = []
        for kind, customer, pick in burst:
            if kind == "bet":
                calls.append(self.bet_call(customer, 1 + pick % 200, f"r{pick % 3}"))
            elif kind == "credit":
                calls.append(self.credit_call(customer, 1 + pick % 50, "free_spin_win"))
            elif kind == "win":
                calls.append(self.win_call(customer, pick, pick % 300, pick % 7 == 0))
            else:
                calls.append(self.rollback_call(customer, pick))
        self.send(calls)

    @precondition(lambda self: self.sent)
    @rule(pick=picks)
    def replay(self, pick: int) -> None:
        first = list(self.sent.values())[pick % len(self.sent)]
        again = self.run(self.engine.submit(first.call))
        assert again.replayed and again.answer == first.decision.answer
        assert again.outcome == first.decision.outcome

    @precondition(lambda self: self.sent)
    @rule(pick=picks, customer=customers)
    def reuse_with_other_content(self, pick: int, customer: int) -> None:
        first = list(self.sent.values())[pick % len(self.sent)]
        other = Bet(
            self.merchant,
            self.customers[customer],
            P,
            first.call.transaction_id,
            "another-game",
            "r9",
            7,
            "EUR",
        )
        decision = self.run(self.engine.submit(other))
        assert decision.outcome == "duplicate_transaction"

    @rule(
        customer=customers,
        amount=st.integers(50, 300),
        multiplier=st.sampled_from([0, 1, 1, 2, 10]),
        max_bet=st.sampled_from([None, 20, 60]),
        due=rarely,
    )
    def grant_bonus(
        self, customer: int, amount: int, multiplier: int, max_bet: int | None, due: bool
    ) -> None:
        """A grant; `due`: already past its expiry (its timer never ran), so that the next call
        on the customer's purse expires it."""
        bonus_id = f"bon_{uuid.uuid4().hex[:20]}"
        expires = datetime.now(UTC) + (timedelta(seconds=-1) if due else timedelta(days=1))
        call = GrantBonus(
            self.merchant,
            self.customers[customer],
            bonus_id,
            amount,
            "EUR",
            multiplier,
            expires,
            max_bet,
        )
        decision = self.run(self.engine.submit(call))
        expected = self.model.grant(
            customer, bonus_id, amount, multiplier, max_bet=max_bet, due=due
        )
        assert decision.outcome == expected
        if decision.accepted:
            self.bonus_ids[customer] = bonus_id

    @precondition(lambda self: self.bonus_ids)
    @rule(customer=customers, status=st.sampled_from(["expired", "forfeited"]))
    def end_bonus(self, customer: int, status: Any) -> None:
        if customer not in self.bonus_ids:
            return
        bonus_id = self.bonus_ids[customer]
        call = EndBonus(self.merchant, self.customers[customer], bonus_id, status)
        decision = self.run(self.engine.submit(call))
        assert decision.accepted
        assert decision.answer["status"] == self.model.end(customer, bonus_id, status)

    @rule(customer=customers)
    def withdrawal_request(self, customer: int) -> None:
        """A withdrawal is requested: the active bonus is forfeited."""
        call = ForfeitActiveBonus(self.merchant, self.customers[customer], "EUR")
        decision = self.run(self.engine.submit(call))
        forfeited = self.model.forfeit_on_withdrawal(customer)
        assert decision.accepted
        assert (decision.answer.get("status") if forfeited else decision.answer) == (
            forfeited or {"bonus": None}
        )

    @rule(customer=customers, blocked=rarely)
    def block(self, customer: int, blocked: bool) -> None:
        self.run(self.set_status(self.customers[customer], "blocked" if blocked else "active"))
        (self.model.blocked.add if blocked else self.model.blocked.discard)(customer)

    @rule(customer=customers, amount=st.integers(1, 300))
    def deposit(self, customer: int, amount: int) -> None:
        self.run(self.books.deposit(self.merchant, self.customers[customer], amount, "EUR"))
        self.model.cash[customer] += amount

    async def active_bonus(self, customer_id: str) -> tuple[str, int] | None:
        async with self.books.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, wagering_remaining FROM bonuses WHERE merchant_id = %s"
                " AND customer_id = %s AND status = 'active'",
                (self.merchant, customer_id),
            )
            row = await cur.fetchone()
        return (row[0], row[1]) if row else None

    async def set_loss_limit(self, customer_id: str, day: int) -> None:
        limits = {"deposit": {}, "loss": {"day": day}}
        async with self.books.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO customer_limits (merchant_id, customer_id, currency, limits)"
                " VALUES (%s, %s, 'EUR', %s)",
                (self.merchant, customer_id, Jsonb(limits)),
            )

    async def set_status(self, customer_id: str, status: str) -> None:
        async with self.books.pool.connection() as conn:
            await conn.execute(
                "UPDATE customers SET status = %s WHERE id = %s", (status, customer_id)
            )

    # ---------------------------------------------------------------- invariants

    @invariant()
    def bonuses_are_the_model(self) -> None:
        """The active bonus of each customer, and its wagering left (the wallet view's)."""
        if not self.merchant:
            return
        for customer, customer_id in enumerate(self.customers):
            active = self.model.active[customer]
            expected = (active, self.model.bonuses[active].wagering) if active else None
            assert self.run(self.active_bonus(customer_id)) == expected

    @invariant()
    def ledger_balances_are_the_model(self) -> None:
        if not self.merchant:
            return
        for customer, customer_id in enumerate(self.customers):
            cash = self.run(
                self.books.balance(self.merchant, customer_id, AccountKind.customer_wallet)
            )
            bonus = self.run(
                self.books.balance(self.merchant, customer_id, AccountKind.customer_bonus)
            )
            assert (cash, bonus) == (self.model.cash[customer], self.model.bonus[customer])


def test_wallet_agrees_with_model(postgres_url: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        pool: AsyncConnectionPool[Any] = loop.run_until_complete(
            open_pool(postgres_url, min_size=1, max_size=4)
        )
        books = Books(pool, Ledger(pool))
        engine = WalletEngine(postgres_url, writers=3, batch_max=4)
        loop.run_until_complete(engine.start())
        try:
            run_state_machine_as_test(
                lambda: WalletMachine(loop, engine, books),  # type: ignore[arg-type]
                settings=settings(
                    max_examples=60,
                    stateful_step_count=40,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
            report = loop.run_until_complete(wallet_audit(pool))
            assert report.ok, report.format()
            assert engine.stats.mean_batch > 1  # the bursts shared transactions
        finally:
            loop.run_until_complete(engine.stop())
            loop.run_until_complete(pool.close())
    finally:
        loop.close()
