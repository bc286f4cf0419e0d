"""API keys and merchant ids: how a key is made, checked against its merchant, and stored hashed.

Used by `paysaga keys` and by the platform's API alike.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from domain.merchants import Scope
from paysaga.store import ApiKeyRow, Store

MERCHANT_SCOPES = (Scope.PAYMENTS.value, Scope.OPS.value)
# The codec decrypts every merchant's payloads: only the installation's operators hold it.
PLATFORM_SCOPES = (Scope.PLATFORM.value, Scope.CODEC.value)
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


async def issue_key(
    store: Store, merchant_id: str | None, name: str, scopes: list[str]
) -> CreatedKey:
    """A new key of the merchant (`payments`, `ops`) or, with no merchant, a platform key
    (`platform`, and `codec` for the installation's operators).

    ValueError for scopes that do not fit, LookupError for a merchant that does not exist.
    """
    allowed = MERCHANT_SCOPES if merchant_id is not None else PLATFORM_SCOPES
    unknown = sorted(set(scopes) - set(allowed))
    if merchant_id is None and not unknown and Scope.PLATFORM.value not in scopes:
        # A key without a merchant is a platform key (the table's check): its scopes say so.
        raise ValueError("a platform key carries the 'platform' scope; add 'codec' beside it")
    if unknown or not scopes:
        whose = f"a key of {merchant_id}" if merchant_id else "a platform key"
        raise ValueError(f"the scopes of {whose} must be among {', '.join(allowed)}; got {scopes}")
    if merchant_id is not None and await store.get_merchant(merchant_id) is None:
        raise LookupError(f"no merchant {merchant_id}")
    key_id, secret = f"key_{secrets.token_hex(12)}", new_secret()
    unique_scopes = [s for s in allowed if s in scopes]
    row = await store.create_api_key(
        key_id,
        merchant_id,
        name,
        secret[:DISPLAY_PREFIX_LENGTH],
        hash_secret(secret),
        unique_scopes,
    )
    return CreatedKey(key_id, secret, row)


def new_merchant_id() -> str:
    return f"mer_{secrets.token_hex(8)}"
