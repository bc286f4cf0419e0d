"""API keys: only the sha256 of each secret is stored, never the secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paysaga.store.sql import TableRow, Tables


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

    async def revoke_api_key(self, key_id: str) -> ApiKeyRow | None:
        """Revoke a key (again: no change); None when there is no such key."""
        return await self._one(
            ApiKeyRow,
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())"
            " WHERE id = %s RETURNING *",
            (key_id,),
        )

    async def list_api_keys(self) -> list[ApiKeyRow]:
        """Every key, revoked ones included, oldest first."""
        return await self._all(ApiKeyRow, "SELECT * FROM api_keys ORDER BY created_at, id", ())

    async def find_api_key_by_hash(self, secret_hash: str) -> ApiKeyRow | None:
        """The unrevoked key whose secret has this sha256 hex."""
        return await self._one(
            ApiKeyRow,
            "SELECT * FROM api_keys WHERE secret_hash = %s AND revoked_at IS NULL",
            (secret_hash,),
        )
