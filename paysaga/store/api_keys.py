"""API keys: only the sha256 of each secret is stored, never the secret; a revocation is
announced on `REVOKED_CHANNEL` so that every API process forgets the key at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paysaga.store.pages import Window, page_query
from paysaga.store.sql import TableRow, Tables

# NOTIFY channel of revocations; the payload is the revoked key's id (never its hash).
REVOKED_CHANNEL = "api_key_revoked"


@dataclass(frozen=True)
class ApiKeyRow(TableRow):
    """A row of `api_keys`; `prefix` is the secret's first characters, to tell keys apart."""

    id: str
    merchant_id: str | None  # None: a platform key
    name: str
    prefix: str
    secret_hash: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeys(Tables):
    """Reads and writes of `api_keys`."""

    async def create_api_key(
        self,
        key_id: str,
        merchant_id: str | None,
        name: str,
        prefix: str,
        secret_hash: str,
        scopes: list[str],
    ) -> ApiKeyRow:
        """Insert a key of a merchant (None: a platform key); only its secret's hash is stored."""
        row = await self._one(
            ApiKeyRow,
            "INSERT INTO api_keys (id, merchant_id, name, prefix, secret_hash, scopes)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
            (key_id, merchant_id, name, prefix, secret_hash, scopes),
        )
        assert row is not None
        return row

    async def revoke_api_key(self, key_id: str, merchant_id: str | None = None) -> ApiKeyRow | None:
        """Revoke a key (again: no change) and tell every API process, on commit; None when there
        is no such key, or, given a merchant, no such key of that merchant."""
        return await self._one(
            ApiKeyRow,
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())"
            " WHERE id = %(id)s AND (%(merchant)s::text IS NULL OR merchant_id = %(merchant)s)"
            " RETURNING *, pg_notify(%(channel)s, id)",
            {"id": key_id, "merchant": merchant_id, "channel": REVOKED_CHANNEL},
        )

    async def list_api_keys(self, merchant_id: str | None = None) -> list[ApiKeyRow]:
        """Every key (or every key of one merchant), revoked ones included, oldest first."""
        return await self._all(
            ApiKeyRow,
            "SELECT * FROM api_keys WHERE %(merchant)s::text IS NULL OR merchant_id = %(merchant)s"
            " ORDER BY created_at, id",
            {"merchant": merchant_id},
        )

    async def list_merchant_api_keys(
        self, merchant_id: str, window: Window[str]
    ) -> tuple[list[ApiKeyRow], bool]:
        """A page of the merchant's keys, oldest first."""
        page = page_query("api_keys", window, newest_first=False)
        rows = await self._all(
            ApiKeyRow,
            f"SELECT * FROM api_keys WHERE {' AND '.join(['merchant_id = %(merchant_id)s', *page.conditions])}"
            f" ORDER BY {page.order_by} LIMIT %(limit)s",
            {**page.params, "merchant_id": merchant_id},
        )
        return page.rows(rows, window.limit)

    async def get_merchant_api_key(self, merchant_id: str, key_id: str) -> ApiKeyRow | None:
        """The merchant's key with this id, revoked or not."""
        return await self._one(
            ApiKeyRow,
            "SELECT * FROM api_keys WHERE id = %s AND merchant_id = %s",
            (key_id, merchant_id),
        )

    async def find_api_key_by_hash(self, secret_hash: str) -> ApiKeyRow | None:
        """The unrevoked key whose secret has this sha256 hex."""
        return await self._one(
            ApiKeyRow,
            "SELECT * FROM api_keys WHERE secret_hash = %s AND revoked_at IS NULL",
            (secret_hash,),
        )
