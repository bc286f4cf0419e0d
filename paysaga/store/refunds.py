"""Refunds: the API's view of each refund, written by its saga, and the deposit's refundable part.

A refund reserves its amount on its deposit's `refunded_amount` in the transaction that inserts
it, under the deposit row's lock, and gives it back in the transaction that fails it; the column's
CHECK (refunded_amount <= amount) holds whatever requests race. Every status change appends its
event (`refund.created`, `refund.succeeded`, ...) in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from domain.errors import Conflict, InvalidRequest, NotFound
from domain.payments import PaymentKind, PaymentStatus
from domain.refunds import RefundStatus
from paysaga.store.events import append_event
from paysaga.store.pages import Window, page_query
from paysaga.store.sql import TableRow, Tables

TERMINAL = [s.value for s in RefundStatus if s.is_terminal]


@dataclass(frozen=True)
class RefundRow(TableRow):
    """A row of `refunds`."""

    id: str
    merchant_id: str
    payment_id: str
    customer_id: str
    amount: int
    currency: str
    status: str
    failure_code: str | None
    failure_reason: str | None
    reason: str | None
    provider: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RefundableDeposit(TableRow):
    """A succeeded deposit as a refund sees it: who, what, at which provider, what is left."""

    id: str
    customer_id: str
    amount: int
    currency: str
    provider: str
    refunded_amount: int

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded_amount


def refund_object(row: RefundRow) -> dict[str, Any]:
    """The refund as the API shows it (and as events carry it)."""
    return {
        "id": row.id,
        "payment_id": row.payment_id,
        "amount": row.amount,
        "currency": row.currency,
        "status": row.status,
        "failure_code": row.failure_code,
        "reason": row.reason,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


async def refund_blocked_by_dispute(conn: AsyncConnection[Any], payment_id: str) -> bool:
    """Whether a dispute of the deposit forbids refunding it (one open, or lost): its money is
    already on its way back to the cardholder (the sandbox PSP refuses such a refund too)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM disputes WHERE payment_id = %s AND status <> 'won')",
        (payment_id,),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


class Refunds(Tables):
    """Reads and writes of `refunds` and of the deposits' `refunded_amount`."""

    async def create_refund(
        self,
        merchant_id: str,
        refund_id: str,
        payment_id: str,
        amount: int | None,
        reason: str | None,
    ) -> tuple[RefundRow, RefundableDeposit]:
        """Reserve the amount on the merchant's succeeded deposit and insert the refund in
        `processing` (event `refund.created`); the refund already there under this id, else.

        `amount` None: what is left to refund. Raises NotFound (no such payment of the
        merchant), Conflict `payment_not_refundable`, InvalidRequest `amount_exceeds_refundable`.
        """
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT id, kind, status, customer_id, amount, currency, provider, refunded_amount"
                " FROM payments WHERE id = %s AND merchant_id = %s FOR UPDATE",
                (payment_id, merchant_id),
            )
            payment = await cur.fetchone()
            if payment is None:
                raise NotFound(f"no payment {payment_id}")
            await cur.execute("SELECT * FROM refunds WHERE id = %s", (refund_id,))
            if (existing := await cur.fetchone()) is not None:
                return RefundRow.from_row(existing), RefundableDeposit.from_row(payment)
            if (
                payment["kind"] != PaymentKind.DEPOSIT
                or payment["status"] != PaymentStatus.SUCCEEDED
                or payment["provider"] is None
                or await refund_blocked_by_dispute(conn, payment_id)
            ):
                raise Conflict(
                    f"{payment_id} is not a succeeded deposit that can be refunded",
                    code="payment_not_refundable",
                )
            deposit = RefundableDeposit.from_row(payment)
            amount = deposit.refundable if amount is None else amount
            if amount <= 0 or amount > deposit.refundable:
                raise InvalidRequest(
                    f"at most {deposit.refundable} of {payment_id} can still be refunded",
                    code="amount_exceeds_refundable",
                    refundable=deposit.refundable,
                )
            await cur.execute(
                "UPDATE payments SET refunded_amount = refunded_amount + %s WHERE id = %s",
                (amount, payment_id),
            )
            await cur.execute(
                "INSERT INTO refunds (id, merchant_id, payment_id, customer_id, amount, currency,"
                " status, reason, provider) VALUES (%s, %s, %s, %s, %s, %s, 'processing', %s, %s)"
                " RETURNING *",
                (
                    refund_id,
                    merchant_id,
                    payment_id,
                    deposit.customer_id,
                    amount,
                    deposit.currency,
                    reason,
                    deposit.provider,
                ),
            )
            inserted = await cur.fetchone()
            assert inserted is not None
            row = RefundRow.from_row(inserted)
            await append_event(
                conn, merchant_id, "refund.created", "refund", row.id, refund_object(row)
            )
            return row, deposit

    async def get_refund(self, refund_id: str) -> RefundRow | None:
        """A refund by its id, whoever's it is (for the worker; the API reads through
        `MerchantStore`)."""
        return await self._one(RefundRow, "SELECT * FROM refunds WHERE id = %s", (refund_id,))

    async def update_refund(
        self,
        refund_id: str,
        status: str,
        failure_code: str | None = None,
        failure_reason: str | None = None,
    ) -> RefundRow | None:
        """Move a refund to `status`; a terminal refund never changes again (None).

        A failure gives its amount back to the deposit's refundable part. A change of status
        appends its event (`refund.<status>`) in the same transaction; a write that repeats the
        status (a retried activity) appends nothing.
        """
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT status FROM refunds WHERE id = %s AND status <> ALL(%s) FOR UPDATE",
                (refund_id, TERMINAL),
            )
            before = await cur.fetchone()
            if before is None:
                return None
            await cur.execute(
                "UPDATE refunds SET status = %s, failure_code = %s, failure_reason = %s,"
                " updated_at = now() WHERE id = %s RETURNING *",
                (status, failure_code, failure_reason, refund_id),
            )
            updated = await cur.fetchone()
            assert updated is not None
            row = RefundRow.from_row(updated)
            if status == RefundStatus.FAILED:
                await cur.execute(
                    "UPDATE payments SET refunded_amount = refunded_amount - %s WHERE id = %s",
                    (row.amount, row.payment_id),
                )
            if before["status"] != status:
                await append_event(
                    conn, row.merchant_id, f"refund.{status}", "refund", row.id, refund_object(row)
                )
        return row

    async def list_refunds(
        self, merchant_id: str, payment_id: str, window: Window[str]
    ) -> tuple[list[RefundRow], bool]:
        """A deposit's refunds, oldest first; the cursors are ids of its refunds."""
        page = page_query("refunds", window, newest_first=False)
        where = ["merchant_id = %(merchant_id)s", "payment_id = %(payment_id)s", *page.conditions]
        rows = await self._all(
            RefundRow,
            f"SELECT * FROM refunds WHERE {' AND '.join(where)}"
            f" ORDER BY {page.order_by} LIMIT %(limit)s",
            {**page.params, "merchant_id": merchant_id, "payment_id": payment_id},
        )
        return page.rows(rows, window.limit)
