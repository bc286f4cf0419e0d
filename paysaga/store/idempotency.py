"""Idempotency keys of the API: the first answer to a key, replayed for the same request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from paysaga.store.sql import TableRow, Tables, one_trip


@dataclass(frozen=True)
class IdempotencyRow(TableRow):
    """A row of `api_idempotency_keys`; the response columns stay NULL until it is answered."""

    merchant_id: str
    key: str
    request_hash: str
    response_status: int | None
    response_body: Any
    response_raw: str | None
    created_at: datetime


class IdempotencyKeys(Tables):
    """Reads and writes of `api_idempotency_keys`."""

    async def claim_idempotency_key(
        self, merchant_id: str, key: str, request_hash: str, ttl_hours: int
    ) -> IdempotencyRow | None:
        """Claim a key for a new request; None when claimed, else the existing record.

        A record older than the TTL is forgotten and the key claimed afresh. So is a claim left
        unfinished for a minute: its request died with its process or its database connection,
        and running it again is safe (what it starts is keyed by the same request).
        """
        # One round trip (`one_trip`): BEGIN, the three statements and COMMIT. The SELECT reads
        # the row as the INSERT left it (ours if claimed), so it is sent whatever happens.
        async with self.pool.connection() as conn:
            async with one_trip(conn):
                await conn.execute(
                    "DELETE FROM api_idempotency_keys WHERE merchant_id = %s AND key = %s"
                    " AND (created_at < now() - make_interval(hours => %s)"
                    "  OR (response_status IS NULL AND created_at < now() - interval '1 minute'))",
                    (merchant_id, key, ttl_hours),
                )
                claimed = await conn.execute(
                    "INSERT INTO api_idempotency_keys (merchant_id, key, request_hash)"
                    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING key",
                    (merchant_id, key, request_hash),
                )
                existing = conn.cursor(row_factory=dict_row)
                await existing.execute(
                    "SELECT * FROM api_idempotency_keys WHERE merchant_id = %s AND key = %s",
                    (merchant_id, key),
                )
            if await claimed.fetchone():
                return None
            row = await existing.fetchone()
        return None if row is None else IdempotencyRow.from_row(row)

    async def complete_idempotency_key(
        self, merchant_id: str, key: str, status: int, raw_body: str
    ) -> None:
        """Store the answer as sent (`response_raw`) and as JSON, for replays and for reading."""
        await self._write(
            "UPDATE api_idempotency_keys"
            " SET response_status = %s, response_body = %s::jsonb, response_raw = %s"
            " WHERE merchant_id = %s AND key = %s RETURNING key",
            (status, raw_body, raw_body, merchant_id, key),
        )

    async def release_idempotency_key(self, merchant_id: str, key: str) -> None:
        """Forget a claim whose request failed on our side, so that the client may retry it."""
        await self._write(
            "DELETE FROM api_idempotency_keys WHERE merchant_id = %s AND key = %s"
            " AND response_status IS NULL RETURNING key",
            (merchant_id, key),
        )
