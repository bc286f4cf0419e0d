"""Each merchant's books are its own (money rule 8): accounts per merchant, no transaction across."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.errors import CrossMerchantTransaction, InvalidAccountKind
from ledger.models import AccountKind, Balance, HoldStatus, LineSpec, Transaction
from ledger.postings import request_hash

from .conftest import NewId
from .test_audit import failing_checks

W, C = AccountKind.customer_wallet, AccountKind.provider_clearing
CHECK = "transactions within one merchant"


def deposit(merchant_id: str, owner: str, psp: str, amount: int) -> list[LineSpec]:
    return [
        LineSpec(merchant_id, psp, C, "EUR", -amount),
        LineSpec(merchant_id, owner, W, "EUR", amount),
    ]


async def test_same_owner_under_two_merchants_is_two_accounts(
    ledger: Ledger, new_id: NewId, two_merchants: tuple[str, str]
) -> None:
    a, b = two_merchants
    alice, psp = new_id("alice"), new_id("psp")
    credit_a = await ledger.post_transaction(new_id("dep"), deposit(a, alice, psp, 1_000))
    await ledger.post_transaction(new_id("dep"), deposit(b, alice, psp, 300))

    assert await ledger.balance(a, alice, W, "EUR") == Balance(1_000, 0, 1_000)
    assert await ledger.balance(b, alice, W, "EUR") == Balance(300, 0, 300)
    assert await ledger.balance(DEV_MERCHANT_ID, alice, W, "EUR") == Balance(0, 0, 0)
    assert [w.available for w in await ledger.balances(b, alice)] == [300]
    assert [e.amount for _, e in await ledger.entries(a, alice, W, "EUR")] == [1_000]
    account_a, account_b = [await ledger.account(m, alice, W, "EUR") for m in (a, b)]
    assert account_a.id != account_b.id
    assert (account_a.merchant_id, account_b.merchant_id) == (a, b)
    assert {e.merchant_id for e in credit_a.entries} == {a}
    # Spending merchant B's wallet cannot reach merchant A's money.
    hold = await ledger.hold(new_id("hold"), b, alice, W, "EUR", 300)
    assert hold.merchant_id == b
    assert await ledger.balance(a, alice, W, "EUR") == Balance(1_000, 0, 1_000)


async def test_transaction_across_two_merchants_is_refused_and_writes_nothing(
    ledger: Ledger, new_id: NewId, two_merchants: tuple[str, str]
) -> None:
    a, b = two_merchants
    alice, bob, psp, key = new_id("alice"), new_id("bob"), new_id("psp"), new_id("tr")
    await ledger.post_transaction(new_id("dep"), deposit(a, alice, psp, 1_000))

    across = [LineSpec(a, alice, W, "EUR", -400), LineSpec(b, bob, W, "EUR", 400)]
    with pytest.raises(CrossMerchantTransaction):
        await ledger.post_transaction(key, across)

    assert await ledger.balance(a, alice, W, "EUR") == Balance(1_000, 0, 1_000)
    assert await ledger.balances(b, bob) == []  # not even its account was created
    assert await ledger.find_transaction_by_key(key) is None
    # The key was not burned: a transfer within merchant A may use it.
    within = [LineSpec(a, alice, W, "EUR", -400), LineSpec(a, bob, W, "EUR", 400)]
    await ledger.post_transaction(key, within)
    assert await ledger.balance(a, bob, W, "EUR") == Balance(400, 0, 400)


async def test_post_hold_with_another_merchants_lines_is_refused(
    ledger: Ledger, new_id: NewId, two_merchants: tuple[str, str]
) -> None:
    a, b = two_merchants
    alice, psp = new_id("alice"), new_id("psp")
    await ledger.post_transaction(new_id("dep"), deposit(a, alice, psp, 1_000))
    await ledger.post_transaction(new_id("dep"), deposit(b, alice, psp, 1_000))
    hold = await ledger.hold(new_id("hold"), a, alice, W, "EUR", 500)

    merchant_b_lines = [LineSpec(b, alice, W, "EUR", -500), LineSpec(b, psp, C, "EUR", 500)]
    with pytest.raises(CrossMerchantTransaction):
        await ledger.post_hold(new_id("post"), hold.id, merchant_b_lines)
    mixed_lines = [LineSpec(a, alice, W, "EUR", -500), LineSpec(b, psp, C, "EUR", 500)]
    with pytest.raises(CrossMerchantTransaction):
        await ledger.post_hold(new_id("post"), hold.id, mixed_lines)

    assert (await ledger.get_hold(hold.id)).status is HoldStatus.pending
    assert await ledger.balance(a, alice, W, "EUR") == Balance(1_000, 500, 500)
    assert await ledger.balance(b, alice, W, "EUR") == Balance(1_000, 0, 1_000)
    assert await ledger.balance(b, psp, C, "EUR") == Balance(-1_000, 0, -1_000)
    # Its own merchant's lines post it, and its reversal stays in that merchant's books.
    merchant_a_lines = [LineSpec(a, alice, W, "EUR", -500), LineSpec(a, psp, C, "EUR", 500)]
    posted = await ledger.post_hold(new_id("post"), hold.id, merchant_a_lines)
    reversal = await ledger.reverse(new_id("rev"), posted.id)
    assert {e.merchant_id for e in reversal.entries} == {a}
    assert await ledger.balance(a, alice, W, "EUR") == Balance(1_000, 0, 1_000)


async def test_account_of_an_unknown_merchant_is_refused(ledger: Ledger, new_id: NewId) -> None:
    with pytest.raises(InvalidAccountKind):
        await ledger.post_transaction(new_id("dep"), deposit("mer_nobody", new_id("alice"), "p", 1))
    with pytest.raises(InvalidAccountKind):
        await ledger.account("", new_id("alice"), W, "EUR")


async def test_write_made_before_merchants_existed_still_replays(
    ledger: Ledger, new_id: NewId, db_pool: AsyncConnectionPool
) -> None:
    """A saga retrying a write that the ledger made before the upgrade gets its first result."""
    alice, psp, key = new_id("alice"), new_id("psp"), new_id("credit")
    # What the ledger stored before merchants: a hash and a result without any merchant.
    old_hash = request_hash(
        "post_transaction",
        {
            "lines": [
                [psp, "provider_clearing", "EUR", -700],
                [alice, "customer_wallet", "EUR", 700],
            ],
            "description": "",
            "metadata": {},
        },
    )
    old_result = {
        "id": 1,
        "idempotency_key": key,
        "entries": [
            {
                "account_id": 1,
                "owner_id": alice,
                "kind": "customer_wallet",
                "currency": "EUR",
                "amount": 700,
                "balance_after": 700,
            }
        ],
    }
    async with db_pool.connection() as conn:
        await conn.execute(
            "INSERT INTO ledger_idempotency (key, operation, request_hash, result)"
            " VALUES (%s, 'post_transaction', %s, %s)",
            (key, old_hash, Jsonb(old_result)),
        )

    replayed = await ledger.post_transaction(key, deposit(DEV_MERCHANT_ID, alice, psp, 700))
    assert replayed == Transaction.from_dict(old_result)
    assert replayed.entries[0].merchant_id == DEV_MERCHANT_ID


async def test_audit_flags_a_transaction_across_merchants(
    ledger: Ledger, new_id: NewId, two_merchants: tuple[str, str], postgres_url: str
) -> None:
    a, b = two_merchants
    alice, psp = new_id("alice"), new_id("psp")
    await ledger.post_transaction(new_id("dep"), deposit(a, alice, psp, 1_000))
    await ledger.post_transaction(new_id("dep"), deposit(b, alice, psp, 1_000))
    hold = await ledger.hold(new_id("hold"), a, alice, W, "EUR", 200)
    report = await ledger.audit()
    assert report.ok, report.format()
    assert CHECK in {check.name for check in report.checks}

    wallet_a, wallet_b, psp_b = [
        (await ledger.account(m, owner, kind, "EUR")).id
        for m, owner, kind in ((a, alice, W), (b, alice, W), (b, psp, C))
    ]
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        # Planted bypassing the engine, in a transaction that is rolled back (rows are immutable).
        cur = await conn.execute(
            "INSERT INTO ledger_transactions (idempotency_key) VALUES (%s), (%s) RETURNING id",
            (new_id("across"), new_id("post-of-b")),
        )
        across, post_of_b = (row[0] for row in await cur.fetchall())
        for transaction, account, amount in [
            (across, wallet_a, -100),  # merchant A's wallet pays merchant B's
            (across, wallet_b, 100),
            (post_of_b, wallet_b, -200),  # merchant A's hold posted in merchant B's books
            (post_of_b, psp_b, 200),
        ]:
            await conn.execute(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
                " VALUES (%s, %s, %s, 0)",
                (transaction, account, amount),
            )
        await conn.execute(
            "UPDATE ledger_holds SET status = 'posted', posted_amount = 200,"
            " posting_transaction_id = %s WHERE id = %s",
            (post_of_b, hold.id),
        )
        failing = await failing_checks(conn)
        await conn.rollback()

    assert failing[CHECK] == [
        ("transaction", across, " ".join(sorted((a, b)))),
        ("hold", hold.id, f"{a} posted by {b}"),
    ]
