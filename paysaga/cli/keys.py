"""API keys in the database: create (the secret shown once), revoke and list, for `paysaga keys`."""

from __future__ import annotations

from paysaga.database import open_pool
from paysaga.keys import CreatedKey, hash_secret, issue_key, new_merchant_id
from paysaga.store import ApiKeyRow, MerchantRow, Store

__all__ = [
    "CreatedKey",
    "create_key",
    "create_merchant",
    "format_keys",
    "hash_secret",
    "list_keys",
    "revoke_key",
]


async def create_key(
    database_url: str, name: str, scopes: list[str], merchant_id: str | None
) -> CreatedKey:
    """`paysaga keys create`: a key of the merchant, or a platform key; the secret's only copy."""
    async with await open_pool(database_url, 1, 1) as pool:
        return await issue_key(Store(pool), merchant_id, name, scopes)


async def create_merchant(database_url: str, name: str) -> MerchantRow:
    """`paysaga merchants create`: a new merchant, with no key yet."""
    async with await open_pool(database_url, 1, 1) as pool:
        return await Store(pool).create_merchant(new_merchant_id(), name)


async def revoke_key(database_url: str, key_id: str) -> ApiKeyRow | None:
    """Revoke a key, refused at once by every API process; None when there is no such key."""
    async with await open_pool(database_url, 1, 1) as pool:
        return await Store(pool).revoke_api_key(key_id)


async def list_keys(database_url: str, merchant_id: str | None = None) -> list[ApiKeyRow]:
    """Every key (or every key of one merchant), revoked ones included."""
    async with await open_pool(database_url, 1, 1) as pool:
        return await Store(pool).list_api_keys(merchant_id)


def format_keys(rows: list[ApiKeyRow]) -> str:
    """A table of keys for the terminal: id, name, prefix, scopes, created, revoked."""
    header = ("ID", "MERCHANT", "NAME", "PREFIX", "SCOPES", "CREATED", "REVOKED")
    lines = [header]
    for row in rows:
        revoked = row.revoked_at
        lines.append(
            (
                row.id,
                row.merchant_id or "(platform)",
                row.name,
                row.prefix + "...",
                ",".join(row.scopes),
                row.created_at.isoformat(timespec="seconds"),
                revoked.isoformat(timespec="seconds") if revoked else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
