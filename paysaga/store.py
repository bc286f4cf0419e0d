"""SQL for the payments service's own tables: customers, payments, idempotency, webhooks, API keys."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.payments import PaymentStatus

Row = dict[str, Any]
TERMINAL = [s.value for s in PaymentStatus if s.is_terminal]


class Store:
    """Reads and writes of customers and payments; one short SQL statement per call."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def _one(self, sql: str, params: tuple[Any, ...] | dict[str, Any]) -> Row | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchone()

    async def _all(self, sql: str, params: tuple[Any, ...] | dict[str, Any]) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall()

    # Customers

    async def create_customer(
        self, customer_id: str, external_id: str, full_name: str, birth_date: date, country: str
    ) -> Row | None:
        """Insert a customer; None when the external id is taken."""
        return await self._one(
            "INSERT INTO customers (id, external_id, full_name, birth_date, country)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (external_id) DO NOTHING RETURNING *",
            (customer_id, external_id, full_name, birth_date, country),
        )

    async def get_customer(self, customer_id: str) -> Row | None:
        return await self._one("SELECT * FROM customers WHERE id = %s", (customer_id,))

    async def record_kyc(self, customer_id: str, status: str, reason: str | None) -> None:
        await self._one(
            "UPDATE customers SET kyc_status = %s, kyc_reason = %s, updated_at = now()"
            " WHERE id = %s RETURNING id",
            (status, reason, customer_id),
        )

    # Payments

    async def insert_payment(
        self,
        payment_id: str,
        kind: str,
        customer_id: str,
        amount: int,
        currency: str,
        provider: str | None,
        details: dict[str, Any],
    ) -> Row:
        """Insert a payment in `processing`, or return the one already there with this id."""
        row = await self._one(
            "INSERT INTO payments (id, kind, status, customer_id, amount, currency, provider, details)"
            " VALUES (%s, %s, 'processing', %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING *",
            (payment_id, kind, customer_id, amount, currency, provider, json.dumps(details)),
        )
        if row is None:
            row = await self.get_payment(payment_id)
        assert row is not None
        return row

    async def get_payment(self, payment_id: str) -> Row | None:
        return await self._one("SELECT * FROM payments WHERE id = %s", (payment_id,))

    async def update_payment(
        self,
        payment_id: str,
        status: str,
        provider: str | None = None,
        failure_code: str | None = None,
        failure_reason: str | None = None,
    ) -> Row | None:
        """Move a payment to `status`; a terminal payment never changes again."""
        return await self._one(
            "UPDATE payments SET status = %s, provider = COALESCE(%s, provider),"
            " failure_code = %s, failure_reason = %s, updated_at = now()"
            " WHERE id = %s AND status <> ALL(%s) RETURNING *",
            (status, provider, failure_code, failure_reason, payment_id, TERMINAL),
        )

    async def list_payments(
        self,
        *,
        customer_id: str | None,
        kind: str | None,
        status: str | None,
        limit: int,
        starting_after: str | None,
    ) -> tuple[list[Row], bool]:
        """Newest first; the cursor is the id of the last payment of the previous page."""
        where = ["(%(customer_id)s::text IS NULL OR customer_id = %(customer_id)s)"]
        where.append("(%(kind)s::text IS NULL OR kind = %(kind)s)")
        where.append("(%(status)s::text IS NULL OR status = %(status)s)")
        if starting_after:
            where.append(
                "(created_at, id) < (SELECT created_at, id FROM payments WHERE id = %(after)s)"
            )
        rows = await self._all(
            f"SELECT * FROM payments WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
            {
                "customer_id": customer_id,
                "kind": kind,
                "status": status,
                "after": starting_after,
                "limit": limit + 1,
            },
        )
        return rows[:limit], len(rows) > limit

    async def count_recent_payments(self, customer_id: str, since: datetime) -> int:
        row = await self._one(
            "SELECT count(*) AS n FROM payments WHERE customer_id = %s AND created_at >= %s",
            (customer_id, since),
        )
        return int(row["n"]) if row else 0

    # FX quotes

    async def insert_quote(self, quote: dict[str, Any]) -> Row:
        columns = ", ".join(quote)
        values = ", ".join(f"%({name})s" for name in quote)
        row = await self._one(
            f"INSERT INTO fx_quotes ({columns}) VALUES ({values}) RETURNING *", quote
        )
        assert row is not None
        return row

    async def get_quote(self, quote_id: str) -> Row | None:
        return await self._one("SELECT * FROM fx_quotes WHERE id = %s", (quote_id,))

    async def use_quote(self, quote_id: str, payment_id: str) -> bool:
        """Mark the quote used by this payment; False when another payment used it."""
        row = await self._one(
            "UPDATE fx_quotes SET used_by_payment_id = %s WHERE id = %s"
            " AND (used_by_payment_id IS NULL OR used_by_payment_id = %s) RETURNING id",
            (payment_id, quote_id, payment_id),
        )
        return row is not None

    # Idempotency keys of the API

    async def claim_idempotency_key(
        self, principal: str, key: str, request_hash: str, ttl_hours: int
    ) -> Row | None:
        """Claim a key for a new request; None when claimed, else the existing record.

        A record older than the TTL is forgotten and the key claimed afresh. So is a claim left
        unfinished for a minute: its request died with its process or its database connection,
        and running it again is safe (what it starts is keyed by the same request).
        """
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "DELETE FROM api_idempotency_keys WHERE principal = %s AND key = %s"
                " AND (created_at < now() - make_interval(hours => %s)"
                "  OR (response_status IS NULL AND created_at < now() - interval '1 minute'))",
                (principal, key, ttl_hours),
            )
            await cur.execute(
                "INSERT INTO api_idempotency_keys (principal, key, request_hash)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING key",
                (principal, key, request_hash),
            )
            if await cur.fetchone():
                return None
            await cur.execute(
                "SELECT * FROM api_idempotency_keys WHERE principal = %s AND key = %s",
                (principal, key),
            )
            return await cur.fetchone()

    async def complete_idempotency_key(
        self, principal: str, key: str, status: int, raw_body: str
    ) -> None:
        """Store the answer as sent (`response_raw`) and as JSON, for replays and for reading."""
        await self._one(
            "UPDATE api_idempotency_keys"
            " SET response_status = %s, response_body = %s::jsonb, response_raw = %s"
            " WHERE principal = %s AND key = %s RETURNING key",
            (status, raw_body, raw_body, principal, key),
        )

    async def release_idempotency_key(self, principal: str, key: str) -> None:
        """Forget a claim whose request failed on our side, so that the client may retry it."""
        await self._one(
            "DELETE FROM api_idempotency_keys WHERE principal = %s AND key = %s"
            " AND response_status IS NULL RETURNING key",
            (principal, key),
        )

    # Provider webhooks

    async def webhook_seen(self, provider: str, event_id: str) -> bool:
        row = await self._one(
            "SELECT 1 AS seen FROM provider_webhook_events WHERE provider = %s AND event_id = %s",
            (provider, event_id),
        )
        return row is not None

    async def record_webhook(
        self, provider: str, event_id: str, payment_id: str | None, event_type: str
    ) -> None:
        await self._one(
            "INSERT INTO provider_webhook_events (provider, event_id, payment_id, event_type)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id",
            (provider, event_id, payment_id, event_type),
        )

    # API keys and the ops audit trail

    async def create_api_key(
        self, key_id: str, name: str, prefix: str, secret_hash: str, scopes: list[str]
    ) -> Row:
        """Insert a key; only the hash of its secret is stored."""
        row = await self._one(
            "INSERT INTO api_keys (id, name, prefix, secret_hash, scopes)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (key_id, name, prefix, secret_hash, scopes),
        )
        assert row is not None
        return row

    async def revoke_api_key(self, key_id: str) -> Row | None:
        """Revoke a key (again: no change); None when there is no such key."""
        return await self._one(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())"
            " WHERE id = %s RETURNING *",
            (key_id,),
        )

    async def list_api_keys(self) -> list[Row]:
        """Every key, revoked ones included, oldest first."""
        return await self._all("SELECT * FROM api_keys ORDER BY created_at, id", ())

    async def find_api_key_by_hash(self, secret_hash: str) -> Row | None:
        """The unrevoked key whose secret has this sha256 hex."""
        return await self._one(
            "SELECT * FROM api_keys WHERE secret_hash = %s AND revoked_at IS NULL",
            (secret_hash,),
        )

    async def record_ops_action(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any]
    ) -> Row:
        """Append one operator action to the audit trail."""
        row = await self._one(
            "INSERT INTO ops_audit_log (actor, action, target, detail)"
            " VALUES (%s, %s, %s, %s) RETURNING *",
            (actor, action, target, json.dumps(detail)),
        )
        assert row is not None
        return row

    async def list_ops_actions(
        self, *, limit: int, starting_after: int | None
    ) -> tuple[list[Row], bool]:
        """Newest first; the cursor is the id of the last entry of the previous page."""
        rows = await self._all(
            "SELECT * FROM ops_audit_log"
            " WHERE (%(after)s::bigint IS NULL OR id < %(after)s)"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"after": starting_after, "limit": limit + 1},
        )
        return rows[:limit], len(rows) > limit

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")
