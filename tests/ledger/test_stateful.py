"""Model-based test: random sequences of ledger writes agree with a small in-memory model."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.errors import (
    AlreadyReversed,
    HoldNotPending,
    IdempotencyConflict,
    InsufficientFunds,
)
from ledger.models import AccountKind, Hold, LineSpec, Transaction
from paysaga.database import open_pool

T = TypeVar("T")
M = DEV_MERCHANT_ID  # the merchant whose books the machine writes
W, C = AccountKind.customer_wallet, AccountKind.provider_clearing
CURRENCIES = ("EUR", "JPY")
WALLETS = ("w0", "w1", "w2")
AccountKey = tuple[str, AccountKind, str]

amounts = st.integers(min_value=1, max_value=5_000)
wallets = st.sampled_from(WALLETS)
currencies = st.sampled_from(CURRENCIES)


@dataclass
class ModelHold:
    account: AccountKey
    amount: int
    status: str = "pending"


@dataclass
class ModelTransaction:
    id: int
    legs: list[tuple[AccountKey, int]]
    reversed: bool = False


@dataclass
class Replay:
    """A successful write, to be sent again: same key and content must return the same result."""

    call: str
    args: tuple[Any, ...]
    result: Transaction | Hold
    extra: dict[str, Any] = field(default_factory=dict)


class LedgerMachine(RuleBasedStateMachine):
    """Drives the real engine (on a private event loop) beside a dict-based model."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ledger: Ledger) -> None:
        super().__init__()
        self.loop, self.ledger = loop, ledger
        self.prefix = uuid.uuid4().hex[:12]
        self.counter = 0
        self.posted: dict[AccountKey, int] = {}
        self.held: dict[AccountKey, int] = {}
        self.holds: dict[int, ModelHold] = {}
        self.transactions: list[ModelTransaction] = []
        self.replays: list[Replay] = []

    # ---------------------------------------------------------------- helpers

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def key(self) -> str:
        self.counter += 1
        return f"{self.prefix}-k{self.counter}"

    def account(self, name: str, kind: AccountKind, currency: str) -> AccountKey:
        key = (f"{self.prefix}-{name}", kind, currency)
        self.posted.setdefault(key, 0)
        self.held.setdefault(key, 0)
        return key

    def available(self, key: AccountKey) -> int:
        return self.posted[key] - self.held[key]

    def lines(self, legs: list[tuple[AccountKey, int]]) -> list[LineSpec]:
        return [LineSpec(M, k[0], k[1], k[2], amount) for k, amount in legs]

    def apply(self, tx: Transaction, legs: list[tuple[AccountKey, int]]) -> None:
        for key, amount in legs:
            self.posted[key] += amount
        self.transactions.append(ModelTransaction(tx.id, legs))

    def post(self, legs: list[tuple[AccountKey, int]], *, refused: bool) -> None:
        key = self.key()
        lines = self.lines(legs)
        if refused:
            with pytest.raises(InsufficientFunds):
                self.run(self.ledger.post_transaction(key, lines))
            return
        tx = self.run(self.ledger.post_transaction(key, lines))
        assert [e.amount for e in tx.entries] == [amount for _, amount in legs]
        self.apply(tx, legs)
        self.replays.append(Replay("post_transaction", (key, lines), tx))

    # ---------------------------------------------------------------- rules

    @rule(wallet=wallets, currency=currencies, amount=st.integers(1, 10_000))
    def deposit(self, wallet: str, currency: str, amount: int) -> None:
        clearing = self.account("psp", C, currency)
        self.post([(clearing, -amount), (self.account(wallet, W, currency), amount)], refused=False)

    @rule(src=wallets, dst=wallets, currency=currencies, amount=amounts)
    def transfer(self, src: str, dst: str, currency: str, amount: int) -> None:
        source = self.account(src, W, currency)
        legs = [(source, -amount), (self.account(dst, W, currency), amount)]
        # src == dst nets to zero on the account: always allowed
        refused = src != dst and self.available(source) < amount
        self.post(legs, refused=refused)

    @rule(wallet=wallets, currency=currencies, amount=amounts)
    def hold(self, wallet: str, currency: str, amount: int) -> None:
        account = self.account(wallet, W, currency)
        key = self.key()
        args = (key, M, account[0], W, currency, amount)
        if self.available(account) < amount:
            with pytest.raises(InsufficientFunds):
                self.run(self.ledger.hold(*args))
            return
        hold = self.run(self.ledger.hold(*args))
        self.held[account] += amount
        self.holds[hold.id] = ModelHold(account, amount)
        self.replays.append(Replay("hold", args, hold))

    @precondition(lambda self: self.holds)
    @rule(pick=st.integers(0, 10_000), share=st.integers(1, 100), fee=st.booleans())
    def post_hold(self, pick: int, share: int, fee: bool) -> None:
        hold_id = sorted(self.holds)[pick % len(self.holds)]
        model = self.holds[hold_id]
        part = max(1, model.amount * share // 100)
        wallet = model.account
        clearing = self.account("psp", C, wallet[2])
        legs = [(wallet, -part), (clearing, part)]
        if fee and part > 1:
            legs = [
                (wallet, -part),
                (clearing, part - 1),
                (self.account("fees", AccountKind.fees, wallet[2]), 1),
            ]
        key = self.key()
        lines = self.lines(legs)
        if model.status != "pending":
            with pytest.raises(HoldNotPending):
                self.run(self.ledger.post_hold(key, hold_id, lines))
            return
        tx = self.run(self.ledger.post_hold(key, hold_id, lines))
        self.held[wallet] -= model.amount
        model.status = "posted"
        self.apply(tx, legs)
        self.replays.append(Replay("post_hold", (key, hold_id, lines), tx))
        hold = self.run(self.ledger.get_hold(hold_id))
        assert (hold.status, hold.posted_amount, hold.posting_transaction_id) == (
            "posted",
            part,
            tx.id,
        )

    @precondition(lambda self: self.holds)
    @rule(pick=st.integers(0, 10_000))
    def void_hold(self, pick: int) -> None:
        hold_id = sorted(self.holds)[pick % len(self.holds)]
        model = self.holds[hold_id]
        key = self.key()
        if model.status != "pending":
            with pytest.raises(HoldNotPending):
                self.run(self.ledger.void_hold(key, hold_id))
            return
        hold = self.run(self.ledger.void_hold(key, hold_id))
        assert hold.status == "voided"
        self.held[model.account] -= model.amount
        model.status = "voided"
        self.replays.append(Replay("void_hold", (key, hold_id), hold))

    @precondition(lambda self: self.transactions)
    @rule(pick=st.integers(0, 10_000))
    def reverse(self, pick: int) -> None:
        original = self.transactions[pick % len(self.transactions)]
        key = self.key()
        if original.reversed:
            with pytest.raises(AlreadyReversed):
                self.run(self.ledger.reverse(key, original.id))
            return
        legs = [(account, -amount) for account, amount in original.legs]
        after = dict(self.posted)
        for account, amount in legs:
            after[account] += amount
        if any(a[1] is W and after[a] - self.held[a] < 0 for a, _ in legs):
            with pytest.raises(InsufficientFunds):
                self.run(self.ledger.reverse(key, original.id))
            return
        tx = self.run(self.ledger.reverse(key, original.id))
        assert tx.reverses_transaction_id == original.id
        original.reversed = True
        self.apply(tx, legs)
        self.replays.append(Replay("reverse", (key, original.id), tx))

    @precondition(lambda self: self.replays)
    @rule(pick=st.integers(0, 10_000))
    def replay_same(self, pick: int) -> None:
        replay = self.replays[pick % len(self.replays)]
        again = self.run(getattr(self.ledger, replay.call)(*replay.args))
        assert again == replay.result

    @precondition(lambda self: self.replays)
    @rule(pick=st.integers(0, 10_000), wallet=wallets)
    def replay_other_content(self, pick: int, wallet: str) -> None:
        replay = self.replays[pick % len(self.replays)]
        key = replay.args[0]
        other = [
            LineSpec(M, f"{self.prefix}-psp", C, "EUR", -123_457),
            LineSpec(M, f"{self.prefix}-{wallet}", W, "EUR", 123_457),
        ]
        with pytest.raises(IdempotencyConflict):
            self.run(self.ledger.post_transaction(key, other))

    # ---------------------------------------------------------------- invariants

    @invariant()
    def balances_match_model(self) -> None:
        for (owner, kind, currency), posted in self.posted.items():
            balance = self.run(self.ledger.balance(M, owner, kind, currency))
            held = self.held[(owner, kind, currency)]
            assert (balance.posted, balance.held) == (posted, held), (owner, kind, currency)
            if kind is W:
                assert balance.available >= 0

    @invariant()
    def money_is_conserved(self) -> None:
        for currency in CURRENCIES:
            assert sum(v for k, v in self.posted.items() if k[2] == currency) == 0


def test_ledger_agrees_with_model(postgres_url: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        pool = loop.run_until_complete(open_pool(postgres_url, min_size=1, max_size=4))
        ledger = Ledger(pool)
        try:
            run_state_machine_as_test(
                lambda: LedgerMachine(loop, ledger),  # type: ignore[arg-type]
                settings=settings(
                    max_examples=40,
                    stateful_step_count=20,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
            report = loop.run_until_complete(ledger.audit())
            assert report.ok, report.format()
        finally:
            loop.run_until_complete(pool.close())
    finally:
        loop.close()
