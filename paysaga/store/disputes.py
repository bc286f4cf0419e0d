"""Disputes: the API's view of each chargeback, written by its Dispute saga with its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from domain.disputes import DisputeStatus
from paysaga.store.events import append_event
from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class DisputeRow(TableRow):
    """A row of `disputes`."""

    id: str
    merchant_id: str
    payment_id: str
    customer_id: str
    provider: str
    provider_dispute_id: str
    amount: int
    currency: str
    fee: int
    reason: str
    status: str
    evidence_due_by: datetime
    customer_part: int
    receivable: int
    provider_sequence: int
    withdrawn_at: datetime | None
    created_at: datetime
    updated_at: datetime


def dispute_object(row: DisputeRow) -> dict[str, Any]:
    """The dispute as the API shows it (and as events carry it)."""
    return {
        "id": row.id,
        "payment_id": row.payment_id,
        "customer_id": row.customer_id,
        "amount": row.amount,
        "currency": row.currency,
        "fee": row.fee,
        "reason": row.reason,
        "status": row.status,
        "evidence_due_by": row.evidence_due_by.isoformat(),
        "receivable": row.receivable,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


@dataclass(frozen=True)
class NewDispute:
    """A provider's dispute of one of our deposits, as its saga first records it."""

    dispute_id: str
    payment_id: str
    provider: str
    provider_dispute_id: str
    amount: int
    currency: str
    fee: int
    reason: str
    evidence_due_by: datetime


# What a dispute takes from the customer (its `customer_part`): nothing unless the deposit
# succeeded (a failed one never credited the wallet, or had its credit reversed); else the
# disputed amount, capped at what the deposit gave the customer less what its refunds (succeeded
# or in flight: `payments.refunded_amount` reserves them) give back and what its earlier disputes
# took (a won one gave it back). The rest, if a provider takes it anyway, is the merchant's.
# Run after the deposit's row is locked (`_LOCK_DEPOSIT`), as a refund's reservation locks it:
# two disputes, or a dispute and a refund, of one deposit never count on the same money.
_LOCK_DEPOSIT = "SELECT 1 FROM payments WHERE id = %(payment_id)s FOR UPDATE"
_INSERT = """
INSERT INTO disputes (id, merchant_id, payment_id, customer_id, provider, provider_dispute_id,
                      amount, currency, fee, reason, status, evidence_due_by, customer_part)
SELECT %(id)s, p.merchant_id, p.id, p.customer_id, %(provider)s, %(provider_dispute_id)s,
       %(amount)s, %(currency)s, %(fee)s, %(reason)s, 'needs_response', %(due)s,
       CASE WHEN p.status = 'succeeded' THEN
           LEAST(%(amount)s, GREATEST(0, p.amount - p.refunded_amount - COALESCE(
               (SELECT SUM(d.customer_part) FROM disputes d
                WHERE d.payment_id = p.id AND d.id <> %(id)s AND d.status <> 'won'), 0)))
       ELSE 0 END
FROM payments p WHERE p.id = %(payment_id)s
ON CONFLICT DO NOTHING
RETURNING *
"""


class Disputes(Tables):
    """Reads and writes of `disputes`; each announced change appends its event in its
    transaction. The API reads a merchant's disputes through `MerchantStore`."""

    async def record_dispute(self, dispute: NewDispute) -> DisputeRow | None:
        """Insert the dispute in `needs_response`, or return the one there (None: no payment).

        Its customer part is fixed here, once: a retry, or a later run of its saga, finds the
        same one, so that a won dispute reinstates exactly what its withdrawal took.
        """
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_LOCK_DEPOSIT, {"payment_id": dispute.payment_id})
            await cur.execute(
                _INSERT,
                {
                    "id": dispute.dispute_id,
                    "payment_id": dispute.payment_id,
                    "provider": dispute.provider,
                    "provider_dispute_id": dispute.provider_dispute_id,
                    "amount": dispute.amount,
                    "currency": dispute.currency,
                    "fee": dispute.fee,
                    "reason": dispute.reason,
                    "due": dispute.evidence_due_by,
                },
            )
            inserted = await cur.fetchone()
        if inserted is not None:
            return DisputeRow.from_row(inserted)
        return await self.get_dispute(dispute.dispute_id)

    async def get_dispute(self, dispute_id: str) -> DisputeRow | None:
        """A dispute by its id, whoever's it is (for the worker)."""
        return await self._one(DisputeRow, "SELECT * FROM disputes WHERE id = %s", (dispute_id,))

    async def open_dispute(self, dispute_id: str, receivable: int) -> DisputeRow | None:
        """Record the withdrawal's receivable and announce `dispute.created`, once."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "UPDATE disputes SET receivable = %s, withdrawn_at = now(), updated_at = now()"
                " WHERE id = %s AND withdrawn_at IS NULL RETURNING *",
                (receivable, dispute_id),
            )
            updated = await cur.fetchone()
            if updated is None:
                return await _locked(conn, dispute_id, lock=False)
            row = DisputeRow.from_row(updated)
            await append_event(
                conn, row.merchant_id, "dispute.created", "dispute", row.id, dispute_object(row)
            )
            return row

    async def update_dispute_status(
        self, dispute_id: str, status: str, provider_sequence: int = 0
    ) -> DisputeRow | None:
        """Move a dispute to `status`, never backwards; announce the change (`dispute.<status>`).

        A final dispute never changes; one of the provider's statuses never goes to a lower one
        (a late `needs_response` after `under_review` changes nothing). Leaving or entering
        `requires_intervention` is the saga's own, in either direction.
        """
        wanted = DisputeStatus(status)
        async with self.pool.connection() as conn, conn.transaction():
            current = await _locked(conn, dispute_id, lock=True)
            if current is None:
                return None
            before = DisputeStatus(current.status)
            moves = before is not wanted and not before.is_final
            if DisputeStatus.REQUIRES_INTERVENTION not in (before, wanted):
                moves = moves and wanted.rank > before.rank
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "UPDATE disputes SET status = %s, updated_at = now(),"
                " provider_sequence = GREATEST(provider_sequence, %s)"
                " WHERE id = %s RETURNING *",
                (wanted.value if moves else before.value, provider_sequence, dispute_id),
            )
            updated = await cur.fetchone()
            assert updated is not None
            row = DisputeRow.from_row(updated)
            if moves and wanted is not DisputeStatus.NEEDS_RESPONSE:
                await append_event(
                    conn,
                    row.merchant_id,
                    f"dispute.{wanted.value}",
                    "dispute",
                    row.id,
                    dispute_object(row),
                )
            return row


async def _locked(conn: AsyncConnection[Any], dispute_id: str, *, lock: bool) -> DisputeRow | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM disputes WHERE id = %s" + (" FOR UPDATE" if lock else ""), (dispute_id,)
    )
    row = await cur.fetchone()
    return None if row is None else DisputeRow.from_row(row)
