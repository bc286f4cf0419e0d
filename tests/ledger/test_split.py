"""Splits: one amount shared by two accounts by their balances under the posting's lock."""

from __future__ import annotations

import asyncio

import pytest

from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.errors import (
    CrossMerchantTransaction,
    IdempotencyConflict,
    ReceivableOverpaid,
    UnbalancedTransaction,
)
from ledger.models import AccountKind, Balance, LineSpec, Split

from .conftest import NewId

M = DEV_MERCHANT_ID
W = AccountKind.customer_wallet
DEBT = AccountKind.customer_receivable
CLEARING = AccountKind.provider_clearing


def chargeback(customer: str, amount: int) -> tuple[list[LineSpec], Split]:
    """The provider takes `amount` back: the wallet pays what it can, the rest is a debt."""
    return (
        [LineSpec(M, "psp", CLEARING, "EUR", amount)],
        Split(M, "EUR", -amount, customer, W, customer, DEBT),
    )


def repayment(customer: str, amount: int) -> tuple[list[LineSpec], Split]:
    """Money in for the customer: the debt first, the rest to the wallet."""
    return (
        [LineSpec(M, "psp", CLEARING, "EUR", -amount)],
        Split(M, "EUR", amount, customer, DEBT, customer, W),
    )


async def fund(ledger: Ledger, new_id: NewId, customer: str, amount: int) -> None:
    lines = [
        LineSpec(M, "psp", CLEARING, "EUR", -amount),
        LineSpec(M, customer, W, "EUR", amount),
    ]
    await ledger.post_transaction(new_id("seed"), lines)


async def test_split_debit_takes_the_wallet_first_and_the_shortfall_as_debt(
    ledger: Ledger, new_id: NewId
) -> None:
    customer = new_id("cus")
    await fund(ledger, new_id, customer, 3_000)
    await ledger.hold(new_id("hold"), M, customer, W, "EUR", 1_000)

    tx = await ledger.post_split(new_id("cb"), *chargeback(customer, 5_000))

    # Available was 2,000 (3,000 posted, 1,000 held): the hold stays covered.
    assert await ledger.balance(M, customer, W, "EUR") == Balance(1_000, 1_000, 0)
    assert await ledger.balance(M, customer, DEBT, "EUR") == Balance(-3_000, 0, -3_000)
    assert {e.kind: e.amount for e in tx.entries} == {CLEARING: 5_000, W: -2_000, DEBT: -3_000}


async def test_split_credit_repays_the_debt_first_then_the_wallet(
    ledger: Ledger, new_id: NewId
) -> None:
    customer = new_id("cus")
    await ledger.post_split(new_id("cb"), *chargeback(customer, 4_000))

    partial = await ledger.post_split(new_id("dep"), *repayment(customer, 1_500))
    rest = await ledger.post_split(new_id("dep"), *repayment(customer, 4_000))

    assert {e.kind: e.amount for e in partial.entries} == {CLEARING: -1_500, DEBT: 1_500}
    assert {e.kind: e.amount for e in rest.entries} == {CLEARING: -4_000, DEBT: 2_500, W: 1_500}
    assert await ledger.balance(M, customer, DEBT, "EUR") == Balance(0, 0, 0)
    assert await ledger.balance(M, customer, W, "EUR") == Balance(1_500, 0, 1_500)


async def test_split_replay_returns_the_first_result_whatever_moved_since(
    ledger: Ledger, new_id: NewId
) -> None:
    customer, key = new_id("cus"), new_id("cb")
    await fund(ledger, new_id, customer, 1_000)
    first = await ledger.post_split(key, *chargeback(customer, 1_500))
    await fund(ledger, new_id, customer, 9_000)

    again = await ledger.post_split(key, *chargeback(customer, 1_500))

    assert again == first
    assert await ledger.balance(M, customer, DEBT, "EUR") == Balance(-500, 0, -500)
    with pytest.raises(IdempotencyConflict):
        await ledger.post_split(key, *chargeback(customer, 1_600))


async def test_concurrent_splits_never_overdraw_the_wallet(ledger: Ledger, new_id: NewId) -> None:
    customer = new_id("cus")
    await fund(ledger, new_id, customer, 10_000)

    await asyncio.gather(
        *(ledger.post_split(new_id("cb"), *chargeback(customer, 3_000)) for _ in range(5))
    )

    assert await ledger.balance(M, customer, W, "EUR") == Balance(0, 0, 0)
    assert await ledger.balance(M, customer, DEBT, "EUR") == Balance(-5_000, 0, -5_000)
    assert (await ledger.audit()).ok


async def test_receivable_never_goes_above_zero(ledger: Ledger, new_id: NewId) -> None:
    customer = new_id("cus")
    overpaid = [
        LineSpec(M, "psp", CLEARING, "EUR", -100),
        LineSpec(M, customer, DEBT, "EUR", 100),
    ]
    with pytest.raises(ReceivableOverpaid):
        await ledger.post_transaction(new_id("bad"), overpaid)
    debt = await ledger.post_split(new_id("cb"), *chargeback(customer, 100))
    repaid = await ledger.post_split(new_id("dep"), *repayment(customer, 100))
    # Reversing the debt once it was repaid would leave the customer owed through its debt.
    with pytest.raises(ReceivableOverpaid):
        await ledger.reverse(new_id("rev"), debt.id)
    assert await ledger.balance(M, customer, DEBT, "EUR") == Balance(0, 0, 0)
    assert repaid.entries[1].kind == DEBT


async def test_split_refuses_unbalanced_or_cross_merchant_lines(
    ledger: Ledger, new_id: NewId, two_merchants: tuple[str, str]
) -> None:
    customer = new_id("cus")
    lines, split = chargeback(customer, 100)
    with pytest.raises(UnbalancedTransaction):
        await ledger.post_split(new_id("cb"), [LineSpec(M, "psp", CLEARING, "EUR", 99)], split)
    with pytest.raises(UnbalancedTransaction):
        await ledger.post_split(new_id("cb"), [], split)
    other = Split(two_merchants[0], "EUR", -100, customer, W, customer, DEBT)
    with pytest.raises(CrossMerchantTransaction):
        await ledger.post_split(new_id("cb"), lines, other)
