"""API keys in the database: create (the secret shown once), revoke and list, for `paysaga keys`."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from paysaga.database import open_pool
from paysaga.store import ApiKeyRow, Store

SCOPES = ("payments", "ops")
SECRET_PREFIX = "sk_live_"
DISPLAY_PREFIX_LENGTH = 12


@dataclass(frozen=True)
class CreatedKey:
    """A new key: its id, and its secret, which is never stored and cannot be shown again."""

    key_id: str
    secret: str
    row: ApiKeyRow


def hash_secret(secret: str) -> str:
    """The sha256 hex under which a key's secret is stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """`sk_live_` and 32 URL-safe random characters (192 bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(24)


async def create_key(database_url: str, name: str, scopes: list[str]) -> CreatedKey:
    """Create a key with these scopes; the returned secret is the only copy."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {scopes}")
    key_id, secret = f"key_{secrets.token_hex(12)}", new_secret()
    unique_scopes = [s for s in SCOPES if s in scopes]
    async with await open_pool(database_url, 1, 1) as pool:
        row = await Store(pool).create_api_key(
            key_id, name, secret[:DISPLAY_PREFIX_LENGTH], hash_secret(secret), unique_scopes
        )
    return CreatedKey(key_id, secret, row)


async def revoke_key(database_url: str, key_id: str) -> ApiKeyRow | None:
    """Revoke a key; None when there is no key with this id."""
    async with await open_pool(database_url, 1, 1) as pool:
        return await Store(pool).revoke_api_key(key_id)


async def list_keys(database_url: str) -> list[ApiKeyRow]:
    """Every key, revoked ones included."""
    async with await open_pool(database_url, 1, 1) as pool:
        return await Store(pool).list_api_keys()


def format_keys(rows: list[ApiKeyRow]) -> str:
    """A table of keys for the terminal: id, name, prefix, scopes, created, revoked."""
    header = ("ID", "NAME", "PREFIX", "SCOPES", "CREATED", "REVOKED")
    lines = [header]
    for row in rows:
        revoked = row.revoked_at
        lines.append(
            (
                row.id,
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
