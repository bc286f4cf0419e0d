"""Model-based test: random sequences of wallet calls, on the real engine, agree with a small model.

The model below is written from the contract's rules, independently of `wallet.rules`: plain
dicts of cash, bonus, bets, tombstones, closed rounds and recorded answers (`--hypothesis-show-
statistics` counts the cases a run met, through `event`). Calls are sent one at
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
from wallet.models import Bet, Decision, EndBonus, GrantBonus, Rollback, Win

T = TypeVar("T")
P = "prov"
CUSTOMERS = (0, 1)
customers = st.sampled_from(CUSTOMERS)
rounds = st.sampled_from(["r0", "r1", "r2"])
picks = st.integers(0, 10_000)
rarely = st.sampled_from([False, False, False, True])


@dataclass
class ModelBet:
    customer: int
    amount: int
    cash: int
    bonus: int
    round: str
    status: str  # open, settled, rolled_back, refused
    returned: int = 0
    first_rollback: str | None = None


@dataclass
class Expected:
    """What the model says a call answers."""

    outcome: str
    parts: tuple[int, int] | None = None  # (cash_part, bonus_part) when accepted
    replay_of: str | None = None  # the call whose answer it repeats


@dataclass
class Model:
    cash: dict[int, int] = field(default_factory=dict)
    bonus: dict[int, int] = field(default_factory=dict)
    wagering: dict[int, int | None] = field(default_factory=dict)  # None: no active bonus
    bets: dict[str, ModelBet] = field(default_factory=dict)
    tombstones: dict[str, tuple[int, str]] = field(default_factory=dict)
    closed: set[tuple[int, str]] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    loss_limit: dict[int, int] = field(default_factory=dict)  # a day's limit; absent: none
    losses: dict[int, int] = field(default_factory=dict)  # bets minus their wins (all today)

    def bet(self, customer: int, tx: str, amount: int, round_id: str) -> Expected:
        if tx in self.tombstones:
            self.bets[tx] = ModelBet(customer, amount, 0, 0, round_id, "refused")
            self.bets[tx].first_rollback = self.tombstones[tx][1]
            return Expected("bet_rolled_back")
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
        if refusal:
            self.bets[tx] = ModelBet(customer, amount, 0, 0, round_id, "refused")
            return Expected(refusal)
        cash = min(amount, self.cash[customer])
        bonus = amount - cash
        self.cash[customer] -= cash
        self.bonus[customer] -= bonus
        self.bets[tx] = ModelBet(customer, amount, cash, bonus, round_id, "open")
        self.losses[customer] = self.losses.get(customer, 0) + amount
        return Expected("accepted", (cash, bonus))

    def win(self, customer: int, bet_id: str, amount: int, closes: bool) -> Expected:
        bet = self.bets.get(bet_id)
        if bet is None or bet.customer != customer or bet.status == "refused":
            tomb = self.tombstones.get(bet_id)  # rolled back before it came (if it ever did)
            if tomb is not None and tomb[0] == customer:
                return Expected("bet_rolled_back")
            return Expected("bet_not_found")
        if bet.status == "rolled_back":
            return Expected("bet_rolled_back")
        if (customer, bet.round) in self.closed:
            return Expected("round_closed")
        active = self.wagering[customer] is not None
        to_bonus = min(amount, bet.bonus - bet.returned) if active else 0
        if active and bet.returned and amount:
            event("second win of a bonus bet")
        if bet.bonus and not active:
            event("win of a bonus bet after its bonus ended")
        self.cash[customer] += amount - to_bonus
        self.bonus[customer] += to_bonus
        self.losses[customer] = self.losses.get(customer, 0) - amount
        bet.returned += to_bonus
        first = bet.status == "open"
        bet.status = "settled"
        if closes:
            self.closed.add((customer, bet.round))
        wagering = self.wagering[customer]
        if first and wagering is not None:
            self.wagering[customer] = max(wagering - bet.amount, 0)
            if self.wagering[customer] == 0:
                event("bonus completed by wagering")
                self._complete(customer)
        return Expected("accepted", (amount - to_bonus, to_bonus))

    def rollback(self, customer: int, tx: str, bet_id: str) -> Expected:
        bet = self.bets.get(bet_id)
        tomb = self.tombstones.get(bet_id)
        owner = bet.customer if bet else tomb[0] if tomb else None
        if owner is not None and owner != customer:
            return Expected("bet_not_found")
        first = (bet.first_rollback if bet else None) or (tomb[1] if tomb else None)
        if first is not None:
            return Expected("accepted", replay_of=first)
        if bet is None:
            self.tombstones[bet_id] = (customer, tx)
            return Expected("accepted", (0, 0))
        if bet.status == "settled":
            return Expected("bet_settled")
        bet.first_rollback = tx
        if bet.status == "refused":
            return Expected("accepted", (0, 0))
        bet.status = "rolled_back"
        self.losses[customer] = self.losses.get(customer, 0) - bet.amount
        self.cash[customer] += bet.cash
        if self.wagering[customer] is not None:
            self.bonus[customer] += bet.bonus
            return Expected("accepted", (bet.cash, bet.bonus))
        if bet.bonus:
            event("rollback of bonus money after the bonus ended")
        return Expected("accepted", (bet.cash, 0))  # the bonus ended: back to the merchant

    def grant(self, customer: int, amount: int, multiplier: int) -> str:
        if self.wagering[customer] is not None:
            return "bonus_already_active"
        self.bonus[customer] += amount
        self.wagering[customer] = amount * multiplier
        if amount * multiplier == 0:
            self._complete(customer)
        return "accepted"

    def end(self, customer: int) -> None:
        if self.wagering[customer] is not None:
            self.bonus[customer] = 0
            self.wagering[customer] = None

    def _complete(self, customer: int) -> None:
        self.cash[customer] += self.bonus[customer]
        self.bonus[customer] = 0
        self.wagering[customer] = None

    def balance(self, customer: int) -> dict[str, int]:
        cash, bonus = self.cash[customer], self.bonus[customer]
        return {"cash": cash, "bonus": bonus, "total": cash + bonus}


@dataclass
class Sent:
    """A call that was recorded under its transaction id, and its answer."""

    call: Bet | Win | Rollback
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
        loss_limit=st.one_of(st.none(), st.integers(0, 200)),
    )
    def open_books(
        self, cash: list[int], bonus: list[int], multiplier: int, loss_limit: int | None
    ) -> None:
        """Two customers of a new merchant, with some cash and most often a bonus to play; the
        first with a day's loss limit now and then."""
        self.merchant = self.run(self.books.merchant())
        for customer, amount in zip(CUSTOMERS, cash, strict=True):
            self.customers.append(self.run(self.books.customer(self.merchant, cash=amount)))
            self.model.cash[customer] = amount
            self.model.bonus[customer] = 0
            self.model.wagering[customer] = None
        if loss_limit is not None:
            self.run(self.set_loss_limit(self.customers[0], loss_limit))
            self.model.loss_limit[0] = loss_limit
        for customer, amount in zip(CUSTOMERS, bonus, strict=True):
            if amount:
                self.grant_bonus(customer, amount, multiplier)

    # ---------------------------------------------------------------- sending and checking

    def send(self, calls: list[tuple[Bet | Win | Rollback, Any]]) -> None:
        """Send the calls at once (one burst); check each against the model, in order."""
        decisions = self.run(self.submit_all([call for call, _ in calls]))
        for (call, expect), decision in zip(calls, decisions, strict=True):
            expected: Expected = expect()
            self.check(call, expected, decision)

    async def submit_all(self, calls: list[Bet | Win | Rollback]) -> list[Decision]:
        return list(await asyncio.gather(*(self.engine.submit(call) for call in calls)))

    def check(self, call: Bet | Win | Rollback, expected: Expected, decision: Decision) -> None:
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
        self.sent[call.transaction_id] = Sent(call, decision)

    def bet_call(self, customer: int, amount: int, round_id: str) -> tuple[Bet, Any]:
        tx = self.tx()
        call = Bet(self.merchant, self.customers[customer], P, tx, "g", round_id, amount, "EUR")
        return call, lambda: self.model.bet(customer, tx, amount, round_id)

    def win_call(self, customer: int, pick: int, amount: int, closes: bool) -> tuple[Win, Any]:
        bet_id = self.some_bet(customer, pick)
        call = Win(self.merchant, self.customers[customer], P, self.tx(), bet_id, amount, closes)
        return call, lambda: self.model.win(customer, bet_id, amount, closes)

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

    @rule(customer=customers, amount=st.integers(1, 200), round_id=rounds)
    def bet(self, customer: int, amount: int, round_id: str) -> None:
        self.send([self.bet_call(customer, amount, round_id)])

    @rule(customer=customers, pick=picks, amount=st.integers(0, 400), closes=rarely)
    def win(self, customer: int, pick: int, amount: int, closes: bool) -> None:
        self.send([self.win_call(customer, pick, amount, closes)])

    @rule(customer=customers, pick=picks)
    def rollback(self, customer: int, pick: int) -> None:
        self.send([self.rollback_call(customer, pick)])

    @rule(
        burst=st.lists(
            st.tuples(st.sampled_from(["bet", "win", "rollback"]), customers, picks),
            min_size=2,
            max_size=8,
        )
    )
    def concurrent_calls(self, burst: list[tuple[str, int, int]]) -> None:
        calls: list[tuple[Any, Any]] = []
        for kind, customer, pick in burst:
            if kind == "bet":
                calls.append(self.bet_call(customer, 1 + pick % 200, f"r{pick % 3}"))
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

    @rule(customer=customers, amount=st.integers(50, 300), multiplier=st.integers(0, 3))
    def grant_bonus(self, customer: int, amount: int, multiplier: int) -> None:
        bonus_id = f"bon_{uuid.uuid4().hex[:20]}"
        expires = datetime.now(UTC) + timedelta(days=1)
        call = GrantBonus(
            self.merchant, self.customers[customer], bonus_id, amount, "EUR", multiplier, expires
        )
        decision = self.run(self.engine.submit(call))
        assert decision.outcome == self.model.grant(customer, amount, multiplier)
        if decision.accepted:
            self.bonus_ids[customer] = bonus_id

    @precondition(lambda self: self.bonus_ids)
    @rule(customer=customers, status=st.sampled_from(["expired", "forfeited"]))
    def end_bonus(self, customer: int, status: Any) -> None:
        if customer not in self.bonus_ids:
            return
        call = EndBonus(self.merchant, self.customers[customer], self.bonus_ids[customer], status)
        decision = self.run(self.engine.submit(call))
        was_active = self.model.wagering[customer] is not None
        self.model.end(customer)
        assert decision.accepted
        if was_active:
            assert decision.answer["status"] == status
        else:  # it had ended already: it stays as it ended
            assert decision.replayed and decision.answer["status"] != "active"

    @rule(customer=customers, blocked=rarely)
    def block(self, customer: int, blocked: bool) -> None:
        self.run(self.set_status(self.customers[customer], "blocked" if blocked else "active"))
        (self.model.blocked.add if blocked else self.model.blocked.discard)(customer)

    @rule(customer=customers, amount=st.integers(1, 300))
    def deposit(self, customer: int, amount: int) -> None:
        self.run(self.books.deposit(self.merchant, self.customers[customer], amount, "EUR"))
        self.model.cash[customer] += amount

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
                    max_examples=40,
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
