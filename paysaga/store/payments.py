"""Payments: the API's view of each payment, written by its saga."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from domain.payments import FailureCode, PaymentKind, PaymentStatus
from domain.routing import AuthorizationStats, MethodFamily
from paysaga.personal_data import sealed_at
from paysaga.store.events import NewEvent, append_event, insert_events
from paysaga.store.pages import Window, page_query
from paysaga.store.sql import TableRow, Tables, one_trip

TERMINAL = [s.value for s in PaymentStatus if s.is_terminal]
# The entries of a payment's details that are personal: sealed in `personal_details_sealed`,
# never in the `details` JSON.
PERSONAL_DETAILS = ("payment_method", "destination")


@dataclass(frozen=True)
class PaymentRow(TableRow):
    """A row of `payments`."""

    id: str
    merchant_id: str
    kind: str
    status: str
    customer_id: str
    amount: int
    currency: str
    provider: str | None
    failure_code: str | None
    failure_reason: str | None
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    routing: (
        dict[str, Any] | None
    )  # why it went where (providers/success_rate.py); null: not routed
    # What the customer must do while `requires_action` (redirect_to_url); null otherwise.
    next_action: dict[str, Any] | None = None
    # The rules that sent it to review (risk step); null when none did.
    review_reasons: list[str] | None = None
    # The merchant's own key-value pairs (its order id...), set at creation.
    metadata: dict[str, str] = field(default_factory=dict)


def payment_object(row: PaymentRow) -> dict[str, Any]:
    """The payment as the API shows it (and as events carry it)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "customer_id": row.customer_id,
        "amount": row.amount,
        "currency": row.currency,
        "provider": row.provider,
        "failure_code": row.failure_code,
        "failure_reason": row.failure_reason,
        "routing": row.routing,
        "next_action": row.next_action,
        "review_reasons": row.review_reasons,
        "metadata": row.metadata,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


class Payments(Tables):
    """Reads and writes of `payments`; every status change appends its event in its transaction."""

    async def insert_payment(
        self,
        merchant_id: str,
        payment_id: str,
        kind: str,
        customer_id: str,
        amount: int,
        currency: str,
        provider: str | None,
        details: dict[str, Any],
        routing: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> PaymentRow:
        """Insert a payment in `processing` (event `payment.created`), or return the one there."""
        public, sealed = self._split_details(merchant_id, payment_id, details)
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "INSERT INTO payments (id, merchant_id, kind, status, customer_id, amount,"
                " currency, provider, details, personal_details_sealed, routing, metadata)"
                " VALUES (%s, %s, %s, 'processing', %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING RETURNING *",
                (
                    payment_id,
                    merchant_id,
                    kind,
                    customer_id,
                    amount,
                    currency,
                    provider,
                    public,
                    sealed,
                    _json_or_null(routing),
                    json.dumps(metadata or {}),
                ),
            )
            inserted = await cur.fetchone()
            if inserted is not None:
                row = PaymentRow.from_row(inserted)
                await append_event(
                    conn, merchant_id, "payment.created", "payment", row.id, payment_object(row)
                )
                return row
        existing = await self.get_payment(payment_id)
        assert existing is not None
        return existing

    async def insert_customer_payment(
        self,
        merchant_id: str,
        payment_id: str,
        kind: str,
        customer_id: str,
        amount: int,
        currency: str,
        provider: str | None,
        details: dict[str, Any],
        routing: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> PaymentRow | None:
        """`insert_payment`, if the merchant has the customer (None when it has not), in two
        round trips: the customer check is in the INSERT, which travels with BEGIN and the read
        of a payment already there; the event (built from the inserted row) with the COMMIT."""
        public, sealed = self._split_details(merchant_id, payment_id, details)
        async with self.pool.connection() as conn:
            async with one_trip(conn):
                inserted = conn.cursor(row_factory=dict_row)
                await inserted.execute(
                    _INSERT_CUSTOMER_PAYMENT,
                    {
                        "id": payment_id,
                        "merchant_id": merchant_id,
                        "kind": kind,
                        "customer_id": customer_id,
                        "amount": amount,
                        "currency": currency,
                        "provider": provider,
                        "details": public,
                        "sealed": sealed,
                        "routing": _json_or_null(routing),
                        "metadata": json.dumps(metadata or {}),
                    },
                )
                there = conn.cursor(row_factory=dict_row)
                await there.execute(
                    "SELECT * FROM payments WHERE id = %s AND merchant_id = %s",
                    (payment_id, merchant_id),
                )
                created = await inserted.fetchone()  # the first round trip
                existing = await there.fetchone()
                appended = None
                if created is not None:
                    row = PaymentRow.from_row(created)
                    event = NewEvent("payment.created", "payment", row.id, payment_object(row))
                    appended = await insert_events(conn, merchant_id, [event])
                # the second: the event and the COMMIT
            if appended is None:
                return None if existing is None else PaymentRow.from_row(existing)
            if len(await appended.fetchall()) != 1:
                raise LookupError(f"no merchant {merchant_id}")
            return row

    def _split_details(
        self, merchant_id: str, payment_id: str, details: dict[str, Any]
    ) -> tuple[str, str | None]:
        """The details as JSON without their personal entries, and those entries sealed (None
        when there are none)."""
        personal = {k: v for k, v in details.items() if k in PERSONAL_DETAILS}
        public = {k: v for k, v in details.items() if k not in PERSONAL_DETAILS}
        if not personal:
            return json.dumps(public), None
        where = sealed_at("payments", "personal_details_sealed", merchant_id, payment_id)
        return json.dumps(public), self.personal_data.seal(json.dumps(personal), where)

    async def payment_personal_details(self, payment_id: str) -> dict[str, Any] | None:
        """The personal entries of a payment's details (its method or destination), opened;
        None when there is no such payment."""
        row = await self._fetch_one(
            "SELECT merchant_id, personal_details_sealed FROM payments WHERE id = %s",
            (payment_id,),
        )
        if row is None:
            return None
        if row["personal_details_sealed"] is None:
            return {}
        where = sealed_at("payments", "personal_details_sealed", row["merchant_id"], payment_id)
        opened: dict[str, Any] = json.loads(
            self.personal_data.open(row["personal_details_sealed"], where)
        )
        return opened

    async def get_payment(self, payment_id: str) -> PaymentRow | None:
        """A payment by its id, whoever's it is (for the worker; the API reads through
        `MerchantStore`)."""
        return await self._one(PaymentRow, "SELECT * FROM payments WHERE id = %s", (payment_id,))

    async def update_payment(
        self,
        payment_id: str,
        status: str,
        provider: str | None = None,
        failure_code: str | None = None,
        failure_reason: str | None = None,
        next_action: dict[str, Any] | None = None,
    ) -> PaymentRow | None:
        """Move a payment to `status`; a terminal payment never changes again (None).

        A change of status appends its event (`payment.<status>`) in the same transaction; a
        write that repeats the status (a retried activity) appends nothing. `next_action` is
        kept with the status it came with, and cleared by the next write without one.
        """
        async with self.pool.connection() as conn, conn.transaction():
            return await update_payment_in(
                conn, payment_id, status, provider, failure_code, failure_reason, next_action
            )

    async def list_payments(
        self,
        merchant_id: str,
        *,
        customer_id: str | None,
        kind: str | None,
        status: str | None,
        window: Window[str],
        metadata: dict[str, str] | None = None,
    ) -> tuple[list[PaymentRow], bool]:
        """Newest first; the cursors are ids of payments of the merchant's. `metadata`: only
        the payments whose metadata hold all these pairs."""
        page = page_query("payments", window, newest_first=True)
        where = ["merchant_id = %(merchant_id)s", *page.conditions]
        if customer_id is not None:
            where.append("customer_id = %(customer_id)s")
        if kind is not None:
            where.append("kind = %(kind)s")
        if status is not None:
            where.append("status = %(status)s")
        if metadata:
            where.append("metadata @> %(metadata)s::jsonb")
        rows = await self._all(
            PaymentRow,
            f"SELECT * FROM payments WHERE {' AND '.join(where)}"
            f" ORDER BY {page.order_by} LIMIT %(limit)s",
            {
                **page.params,
                "merchant_id": merchant_id,
                "customer_id": customer_id,
                "kind": kind,
                "status": status,
                "metadata": json.dumps(metadata or {}),
            },
        )
        return page.rows(rows, window.limit)

    async def authorization_stats(
        self, merchant_id: str, currency: str, method: MethodFamily, window_seconds: float
    ) -> dict[str, AuthorizationStats]:
        """Per provider account, the merchant's deposits of the last `window_seconds` in this
        currency and method family that got the provider's answer: approved (`succeeded`) or
        declined (`provider_declined`). Unavailability, rejections and payments still in flight
        count for nothing; a deposit counts for the account that took its charge (`provider`).
        """
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                _AUTHORIZATION_STATS,
                {
                    "merchant_id": merchant_id,
                    "kind": PaymentKind.DEPOSIT.value,
                    "currency": currency,
                    "method": method.value,
                    "window_seconds": window_seconds,
                    "succeeded": PaymentStatus.SUCCEEDED.value,
                    "declined": FailureCode.PROVIDER_DECLINED.value,
                },
            )
            rows = await cur.fetchall()
        return {
            provider: AuthorizationStats(attempts, approvals)
            for provider, attempts, approvals in rows
        }

    async def count_recent_payments(self, customer_id: str, since: datetime) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM payments WHERE customer_id = %s AND created_at >= %s",
                (customer_id, since),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0


# The payment in `processing`, only if its customer is the merchant's; nothing if the id is there.
_INSERT_CUSTOMER_PAYMENT = """
INSERT INTO payments (id, merchant_id, kind, status, customer_id, amount, currency, provider,
                      details, personal_details_sealed, routing, metadata)
SELECT %(id)s, %(merchant_id)s, %(kind)s, 'processing', %(customer_id)s, %(amount)s,
       %(currency)s, %(provider)s, %(details)s::jsonb, %(sealed)s::text, %(routing)s::jsonb,
       %(metadata)s::jsonb
WHERE EXISTS (SELECT 1 FROM customers WHERE id = %(customer_id)s AND merchant_id = %(merchant_id)s)
ON CONFLICT (id) DO NOTHING
RETURNING *
"""


# By `ix_payments_merchant_created`; the method family is known only from the payment's routing
# record (the payment method itself is sealed).
_AUTHORIZATION_STATS = """
SELECT provider,
       count(*) AS attempts,
       count(*) FILTER (WHERE status = %(succeeded)s) AS approvals
FROM payments
WHERE merchant_id = %(merchant_id)s
  AND created_at >= now() - make_interval(secs => %(window_seconds)s)
  AND kind = %(kind)s AND currency = %(currency)s
  AND routing->>'method' = %(method)s
  AND provider IS NOT NULL
  AND (status = %(succeeded)s OR failure_code = %(declined)s)
GROUP BY provider
"""


def _json_or_null(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


async def update_payment_in(
    conn: Any,
    payment_id: str,
    status: str,
    provider: str | None = None,
    failure_code: str | None = None,
    failure_reason: str | None = None,
    next_action: dict[str, Any] | None = None,
) -> PaymentRow | None:
    """`Store.update_payment` inside the caller's transaction, the row locked until it ends (a
    ledger posting that makes the status true goes in the same transaction)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT status FROM payments WHERE id = %s AND status <> ALL(%s) FOR UPDATE",
        (payment_id, TERMINAL),
    )
    before = await cur.fetchone()
    if before is None:
        return None
    await cur.execute(
        "UPDATE payments SET status = %s, provider = COALESCE(%s, provider),"
        " failure_code = %s, failure_reason = %s, next_action = %s, updated_at = now()"
        " WHERE id = %s RETURNING *",
        (status, provider, failure_code, failure_reason, _json_or_null(next_action), payment_id),
    )
    updated = await cur.fetchone()
    assert updated is not None
    row = PaymentRow.from_row(updated)
    if before["status"] != status:
        await append_event(
            conn,
            row.merchant_id,
            f"payment.{status}",
            "payment",
            row.id,
            payment_object(row),
        )
    return row
