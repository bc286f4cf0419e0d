"""The SQL of a ledger hold: funds reserved on an account, then posted, voided or expired.

A hold locks its account like a posting does (`ledger.postings`); a hold is locked before
accounts, never after.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ledger.errors import (
    CrossMerchantTransaction,
    HoldExceeded,
    HoldExpired,
    HoldNotFound,
    HoldNotPending,
    HoldPostingMismatch,
    InsufficientFunds,
)
from ledger.models import (
    Account,
    AccountKind,
    Hold,
    HoldStatus,
    Transaction,
)
from ledger.postings import Conn, Leg, describe_account, post

HOLD_COLUMNS = """
    h.id, h.idempotency_key, a.merchant_id, a.owner_id, a.kind, a.currency, h.amount, h.status,
    h.expires_at, h.posted_amount, h.posting_transaction_id
"""


async def insert_hold(
    conn: Conn, idempotency_key: str, account: Account, amount: int, expires_at: datetime | None
) -> Hold:
    """Reserve `amount` on the locked account (held += amount); InsufficientFunds if it can't."""
    cur = await conn.execute(
        "SELECT posted, held FROM ledger_accounts WHERE id = %s FOR UPDATE", (account.id,)
    )
    row = await cur.fetchone()
    assert row is not None
    posted, held = row
    if not account.allow_negative and posted - held - amount < 0:
        raise InsufficientFunds(
            f"{describe_account(account)}: available {posted - held}, hold of {amount} refused"
        )
    cur = await conn.execute(
        "INSERT INTO ledger_holds (idempotency_key, account_id, amount, expires_at)"
        " VALUES (%s, %s, %s, %s) RETURNING id, expires_at",
        (idempotency_key, account.id, amount, expires_at),
    )
    hold_row = await cur.fetchone()
    assert hold_row is not None
    await conn.execute(
        "UPDATE ledger_accounts SET held = held + %s, version = version + 1 WHERE id = %s",
        (amount, account.id),
    )
    return Hold(
        id=hold_row[0],
        idempotency_key=idempotency_key,
        merchant_id=account.merchant_id,
        owner_id=account.owner_id,
        kind=account.kind,
        currency=account.currency,
        amount=amount,
        status=HoldStatus.pending,
        expires_at=_iso(hold_row[1]),
    )


async def post_pending_hold(
    conn: Conn,
    idempotency_key: str,
    hold_id: int,
    legs: Sequence[Leg],
    description: str,
    metadata: dict[str, Any],
) -> Transaction:
    """Post the legs against a pending hold, release all of it, and mark it `posted`."""
    account_id, merchant_id, held_amount = await _lock_pending_hold(conn, hold_id)
    if any(account.merchant_id != merchant_id for account, _ in legs):
        raise CrossMerchantTransaction(
            f"hold {hold_id} is merchant {merchant_id!r}'s: lines of another merchant refused"
        )
    debit = -sum(amount for account, amount in legs if account.id == account_id)
    if debit <= 0:
        raise HoldPostingMismatch(f"the lines do not debit the account of hold {hold_id}")
    if debit > held_amount:
        raise HoldExceeded(f"hold {hold_id} is {held_amount}, posting {debit} refused")
    tx = await post(
        conn, idempotency_key, legs, description, metadata, release=(account_id, held_amount)
    )
    await conn.execute(
        "UPDATE ledger_holds SET status = 'posted', posted_amount = %s,"
        " posting_transaction_id = %s, resolved_at = now() WHERE id = %s",
        (debit, tx.id, hold_id),
    )
    return tx


async def _lock_pending_hold(conn: Conn, hold_id: int) -> tuple[int, str, int]:
    """Lock a hold that may still be posted; its account id, the account's merchant, its amount."""
    # Only the hold is locked here (OF h): its account is locked later, in id order, by `post`.
    cur = await conn.execute(
        "SELECT h.account_id, a.merchant_id, h.amount, h.status,"
        " h.expires_at IS NOT NULL AND h.expires_at <= now()"
        " FROM ledger_holds h JOIN ledger_accounts a ON a.id = h.account_id"
        " WHERE h.id = %s FOR UPDATE OF h",
        (hold_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise HoldNotFound(f"hold {hold_id} does not exist")
    account_id, merchant_id, held_amount, status, expired = row
    if status != HoldStatus.pending:
        raise HoldNotPending(f"hold {hold_id} is already {status}")
    if expired:
        raise HoldExpired(f"hold {hold_id} has expired")
    return account_id, merchant_id, held_amount


async def resolve_hold(conn: Conn, hold_id: int, status: HoldStatus) -> None:
    """End a pending hold without posting (voided or expired) and release its amount."""
    cur = await conn.execute(
        "SELECT account_id, amount, status FROM ledger_holds WHERE id = %s FOR UPDATE", (hold_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise HoldNotFound(f"hold {hold_id} does not exist")
    account_id, amount, current = row
    if current != HoldStatus.pending:
        raise HoldNotPending(f"hold {hold_id} is already {current}")
    await conn.execute("SELECT 1 FROM ledger_accounts WHERE id = %s FOR UPDATE", (account_id,))
    await conn.execute(
        "UPDATE ledger_accounts SET held = held - %s, version = version + 1 WHERE id = %s",
        (amount, account_id),
    )
    await conn.execute(
        "UPDATE ledger_holds SET status = %s, resolved_at = now() WHERE id = %s",
        (str(status), hold_id),
    )


async def find_hold(conn: Conn, where: str, value: object) -> Hold | None:
    """The hold matching `where` (on `h`, joined with its account `a`), as it is now."""
    cur = await conn.execute(
        f"SELECT {HOLD_COLUMNS} FROM ledger_holds h"
        f" JOIN ledger_accounts a ON a.id = h.account_id WHERE {where}",
        (value,),
    )
    row = await cur.fetchone()
    return None if row is None else _hold_from_row(row)


async def load_hold(conn: Conn, hold_id: int) -> Hold:
    """A hold as it is now; HoldNotFound if there is none."""
    hold = await find_hold(conn, "h.id = %s", hold_id)
    if hold is None:
        raise HoldNotFound(f"hold {hold_id} does not exist")
    return hold


def _hold_from_row(row: Sequence[Any]) -> Hold:
    (
        hold_id,
        key,
        merchant_id,
        owner_id,
        kind,
        currency,
        amount,
        status,
        expires_at,
        posted,
        posting_tx,
    ) = row
    return Hold(
        id=hold_id,
        idempotency_key=key,
        merchant_id=merchant_id,
        owner_id=owner_id,
        kind=AccountKind(kind),
        currency=currency,
        amount=amount,
        status=HoldStatus(status),
        expires_at=_iso(expires_at),
        posted_amount=posted,
        posting_transaction_id=posting_tx,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
