"""The ledger engine's behaviour: transfers, holds, reversals, idempotency, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.errors import (
    AlreadyReversed,
    HoldExceeded,
    HoldExpired,
    HoldNotFound,
    HoldNotPending,
    HoldPostingMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidCurrency,
    TransactionNotFound,
    UnbalancedTransaction,
)
from ledger.models import AccountKind, Balance, HoldStatus, LineSpec

from .conftest import NewId

M = DEV_MERCHANT_ID  # the merchant whose books these tests write

W = AccountKind.customer_wallet
CLEARING = AccountKind.provider_clearing
FEES = AccountKind.fees


def deposit(owner: str, amount: int, currency: str = "EUR", psp: str = "psp") -> list[LineSpec]:
    """Lines of a deposit: the provider's clearing account pays the customer's wallet."""
    return [
        LineSpec(M, psp, CLEARING, currency, -amount),
        LineSpec(M, owner, W, currency, amount),
    ]


def transfer(src: str, dst: str, amount: int, currency: str = "EUR") -> list[LineSpec]:
    return [LineSpec(M, src, W, currency, -amount), LineSpec(M, dst, W, currency, amount)]


async def test_post_transaction_moves_money_and_records_balances(
    ledger: Ledger, new_id: NewId
) -> None:
    alice, bob, psp = new_id("alice"), new_id("bob"), new_id("psp")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 10_000, psp=psp))
    tx = await ledger.post_transaction(new_id("tr"), transfer(alice, bob, 2_500), "rent")

    assert await ledger.balance(M, alice, W, "EUR") == Balance(7_500, 0, 7_500)
    assert await ledger.balance(M, bob, W, "EUR") == Balance(2_500, 0, 2_500)
    assert await ledger.balance(M, psp, CLEARING, "EUR") == Balance(-10_000, 0, -10_000)
    assert [(e.owner_id, e.amount, e.balance_after) for e in tx.entries] == [
        (alice, -2_500, 7_500),
        (bob, 2_500, 2_500),
    ]
    assert tx.description == "rent"
    assert await ledger.get_transaction(tx.id) == tx
    assert await ledger.get_transaction_by_key(tx.idempotency_key) == tx
    assert [e.amount for _, e in await ledger.entries(M, alice, W, "EUR")] == [10_000, -2_500]


async def test_post_transaction_refused_when_wallet_would_go_negative(
    ledger: Ledger, new_id: NewId
) -> None:
    alice, bob = new_id("alice"), new_id("bob")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000))
    with pytest.raises(InsufficientFunds):
        await ledger.post_transaction(new_id("tr"), transfer(alice, bob, 1_001))
    assert await ledger.balance(M, alice, W, "EUR") == Balance(1_000, 0, 1_000)
    assert await ledger.balance(M, bob, W, "EUR") == Balance(0, 0, 0)


async def test_post_transaction_multi_currency_fx_legs(ledger: Ledger, new_id: NewId) -> None:
    alice, bob, fx = new_id("alice"), new_id("bob"), new_id("fx")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 10_000, "EUR"))
    await ledger.post_transaction(
        new_id("fx"),
        [
            LineSpec(M, alice, W, "EUR", -10_000),
            LineSpec(M, fx, AccountKind.fx_position, "EUR", 10_000),
            LineSpec(M, fx, AccountKind.fx_position, "JPY", -1_650_000),
            LineSpec(M, bob, W, "JPY", 1_650_000),
        ],
    )
    assert [b.currency for b in await ledger.balances(M, bob)] == ["JPY"]
    assert (await ledger.balances(M, bob))[0].available == 1_650_000
    assert (await ledger.balance(M, fx, AccountKind.fx_position, "JPY")).posted == -1_650_000


async def test_post_transaction_replay_returns_first_result(ledger: Ledger, new_id: NewId) -> None:
    alice, bob, key = new_id("alice"), new_id("bob"), new_id("tr")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000))
    first = await ledger.post_transaction(key, transfer(alice, bob, 300))
    again = await ledger.post_transaction(key, transfer(alice, bob, 300))
    assert again == first
    assert await ledger.balance(M, bob, W, "EUR") == Balance(300, 0, 300)


async def test_post_transaction_replay_with_other_content_conflicts(
    ledger: Ledger, new_id: NewId
) -> None:
    alice, bob, key = new_id("alice"), new_id("bob"), new_id("tr")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000))
    await ledger.post_transaction(key, transfer(alice, bob, 300))
    with pytest.raises(IdempotencyConflict):
        await ledger.post_transaction(key, transfer(alice, bob, 301))
    with pytest.raises(IdempotencyConflict):
        await ledger.hold(key, M, alice, W, "EUR", 300)
    assert await ledger.balance(M, bob, W, "EUR") == Balance(300, 0, 300)


async def test_failed_write_does_not_burn_its_key(ledger: Ledger, new_id: NewId) -> None:
    alice, bob, key = new_id("alice"), new_id("bob"), new_id("tr")
    with pytest.raises(InsufficientFunds):
        await ledger.post_transaction(key, transfer(alice, bob, 500))
    await ledger.post_transaction(new_id("dep"), deposit(alice, 500))
    await ledger.post_transaction(key, transfer(alice, bob, 500))
    assert await ledger.balance(M, bob, W, "EUR") == Balance(500, 0, 500)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([LineSpec(M, "a", W, "EUR", 100)], UnbalancedTransaction),
        ([LineSpec(M, "a", W, "EUR", 100), LineSpec(M, "b", W, "EUR", -99)], UnbalancedTransaction),
        (
            [LineSpec(M, "a", W, "EUR", 100), LineSpec(M, "b", W, "USD", -100)],
            UnbalancedTransaction,
        ),
        ([LineSpec(M, "a", W, "eur", 100), LineSpec(M, "b", W, "eur", -100)], InvalidCurrency),
        ([LineSpec(M, "a", W, "EURO", 100), LineSpec(M, "b", W, "EURO", -100)], InvalidCurrency),
        ([LineSpec(M, "a", W, "EUR", 0), LineSpec(M, "b", W, "EUR", 0)], InvalidAmount),
        ([LineSpec(M, "a", W, "EUR", 1.5), LineSpec(M, "b", W, "EUR", -1.5)], InvalidAmount),  # type: ignore[arg-type]
    ],
)
async def test_post_transaction_refuses_bad_lines(
    ledger: Ledger, new_id: NewId, lines: list[LineSpec], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await ledger.post_transaction(new_id("bad"), lines)


async def test_hold_then_post_full(ledger: Ledger, new_id: NewId) -> None:
    alice, psp = new_id("alice"), new_id("psp")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000, psp=psp))
    hold = await ledger.hold(new_id("hold"), M, alice, W, "EUR", 700)
    assert hold.status is HoldStatus.pending
    assert await ledger.balance(M, alice, W, "EUR") == Balance(1_000, 700, 300)
    with pytest.raises(InsufficientFunds):
        await ledger.post_transaction(new_id("tr"), transfer(alice, new_id("bob"), 301))

    tx = await ledger.post_hold(
        new_id("post"),
        hold.id,
        [LineSpec(M, alice, W, "EUR", -700), LineSpec(M, psp, CLEARING, "EUR", 700)],
    )
    assert await ledger.balance(M, alice, W, "EUR") == Balance(300, 0, 300)
    posted = await ledger.get_hold(hold.id)
    assert posted.status is HoldStatus.posted
    assert posted.posted_amount == 700
    assert posted.posting_transaction_id == tx.id


async def test_hold_post_partial_releases_remainder(ledger: Ledger, new_id: NewId) -> None:
    alice, psp = new_id("alice"), new_id("psp")
    fees = new_id("house")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000, psp=psp))
    hold = await ledger.hold(new_id("hold"), M, alice, W, "EUR", 800)
    await ledger.post_hold(
        new_id("post"),
        hold.id,
        [
            LineSpec(M, alice, W, "EUR", -600),
            LineSpec(M, psp, CLEARING, "EUR", 590),
            LineSpec(M, fees, FEES, "EUR", 10),
        ],
    )
    assert await ledger.balance(M, alice, W, "EUR") == Balance(400, 0, 400)
    assert (await ledger.balance(M, fees, FEES, "EUR")).posted == 10
    assert (await ledger.get_hold(hold.id)).posted_amount == 600


async def test_hold_posts_at_most_once(ledger: Ledger, new_id: NewId) -> None:
    alice, psp = new_id("alice"), new_id("psp")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000, psp=psp))
    hold = await ledger.hold(new_id("hold"), M, alice, W, "EUR", 500)
    lines = [LineSpec(M, alice, W, "EUR", -500), LineSpec(M, psp, CLEARING, "EUR", 500)]
    post_key = new_id("post")
    first = await ledger.post_hold(post_key, hold.id, lines)
    assert await ledger.post_hold(post_key, hold.id, lines) == first  # replay
    with pytest.raises(HoldNotPending):
        await ledger.post_hold(new_id("post-again"), hold.id, lines)
    with pytest.raises(HoldNotPending):
        await ledger.void_hold(new_id("void"), hold.id)
    assert await ledger.balance(M, alice, W, "EUR") == Balance(500, 0, 500)


async def test_post_hold_refuses_more_than_held_or_wrong_account(
    ledger: Ledger, new_id: NewId
) -> None:
    alice, bob, psp = new_id("alice"), new_id("bob"), new_id("psp")
    await ledger.post_transaction(new_id("dep-a"), deposit(alice, 1_000, psp=psp))
    await ledger.post_transaction(new_id("dep-b"), deposit(bob, 1_000, psp=psp))
    hold = await ledger.hold(new_id("hold"), M, alice, W, "EUR", 500)
    with pytest.raises(HoldExceeded):
        await ledger.post_hold(
            new_id("post"),
            hold.id,
            [LineSpec(M, alice, W, "EUR", -501), LineSpec(M, psp, CLEARING, "EUR", 501)],
        )
    with pytest.raises(HoldPostingMismatch):
        await ledger.post_hold(
            new_id("post"),
            hold.id,
            [LineSpec(M, bob, W, "EUR", -100), LineSpec(M, psp, CLEARING, "EUR", 100)],
        )
    with pytest.raises(HoldNotFound):
        await ledger.post_hold(new_id("post"), 2**60, transfer(alice, bob, 1))
    assert (await ledger.get_hold(hold.id)).status is HoldStatus.pending
    assert await ledger.balance(M, alice, W, "EUR") == Balance(1_000, 500, 500)


async def test_hold_refused_beyond_available(ledger: Ledger, new_id: NewId) -> None:
    alice = new_id("alice")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000))
    await ledger.hold(new_id("hold-1"), M, alice, W, "EUR", 600)
    with pytest.raises(InsufficientFunds):
        await ledger.hold(new_id("hold-2"), M, alice, W, "EUR", 401)
    with pytest.raises(InvalidAmount):
        await ledger.hold(new_id("hold-3"), M, alice, W, "EUR", -1)
    assert await ledger.balance(M, alice, W, "EUR") == Balance(1_000, 600, 400)


async def test_void_hold_releases_funds_once(ledger: Ledger, new_id: NewId) -> None:
    alice = new_id("alice")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000))
    hold = await ledger.hold(new_id("hold"), M, alice, W, "EUR", 1_000)
    void_key = new_id("void")
    voided = await ledger.void_hold(void_key, hold.id)
    assert voided.status is HoldStatus.voided
    assert await ledger.void_hold(void_key, hold.id) == voided
    with pytest.raises(HoldNotPending):
        await ledger.void_hold(new_id("void-again"), hold.id)
    assert await ledger.balance(M, alice, W, "EUR") == Balance(1_000, 0, 1_000)


async def test_expired_hold_cannot_post_and_is_released(ledger: Ledger, new_id: NewId) -> None:
    alice, psp = new_id("alice"), new_id("psp")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000, psp=psp))
    past = datetime.now(UTC) - timedelta(seconds=1)
    hold = await ledger.hold(new_id("hold-1"), M, alice, W, "EUR", 400, expires_at=past)
    later = await ledger.hold(
        new_id("hold-2"), M, alice, W, "EUR", 100, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    with pytest.raises(HoldExpired):
        await ledger.post_hold(
            new_id("post"),
            hold.id,
            [LineSpec(M, alice, W, "EUR", -400), LineSpec(M, psp, CLEARING, "EUR", 400)],
        )
    assert await ledger.expire_holds(datetime.now(UTC)) >= 1
    assert (await ledger.get_hold(hold.id)).status is HoldStatus.expired
    assert (await ledger.get_hold(later.id)).status is HoldStatus.pending
    assert await ledger.balance(M, alice, W, "EUR") == Balance(1_000, 100, 900)
    with pytest.raises(HoldNotPending):
        await ledger.void_hold(new_id("void"), hold.id)


async def test_reverse_negates_once(ledger: Ledger, new_id: NewId) -> None:
    alice, bob = new_id("alice"), new_id("bob")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000))
    tx = await ledger.post_transaction(new_id("tr"), transfer(alice, bob, 400))
    key = new_id("rev")
    reversal = await ledger.reverse(key, tx.id)
    assert reversal.reverses_transaction_id == tx.id
    assert [e.amount for e in reversal.entries] == [400, -400]
    assert await ledger.reverse(key, tx.id) == reversal
    with pytest.raises(AlreadyReversed):
        await ledger.reverse(new_id("rev-again"), tx.id)
    assert await ledger.balance(M, alice, W, "EUR") == Balance(1_000, 0, 1_000)
    assert await ledger.balance(M, bob, W, "EUR") == Balance(0, 0, 0)
    with pytest.raises(TransactionNotFound):
        await ledger.reverse(new_id("rev"), 2**60)


async def test_reverse_refused_when_wallet_already_spent(ledger: Ledger, new_id: NewId) -> None:
    alice, bob, carol = new_id("alice"), new_id("bob"), new_id("carol")
    await ledger.post_transaction(new_id("dep"), deposit(alice, 1_000))
    tx = await ledger.post_transaction(new_id("tr"), transfer(alice, bob, 400))
    await ledger.post_transaction(new_id("tr"), transfer(bob, carol, 400))
    with pytest.raises(InsufficientFunds):
        await ledger.reverse(new_id("rev"), tx.id)
    assert await ledger.balance(M, bob, W, "EUR") == Balance(0, 0, 0)


async def test_account_is_created_once(ledger: Ledger, new_id: NewId) -> None:
    alice = new_id("alice")
    first = await ledger.account(M, alice, W, "EUR")
    assert await Ledger(ledger._pool).account(M, alice, "customer_wallet", "EUR") == first
    assert not first.allow_negative
    assert (await ledger.account(M, alice, FEES, "EUR")).allow_negative


async def test_audit_is_clean_after_engine_tests(ledger: Ledger) -> None:
    report = await ledger.audit()
    assert report.ok, report.format()
