"""Dependencies of the routes: settings, store, ledger, wallet engine, Temporal client, the caller's
API key."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import psycopg
from fastapi import Depends, Header, Request
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from domain.errors import (
    Forbidden,
    IdempotencyKeyMissing,
    InvalidRequest,
    ServiceUnavailable,
    Unauthorized,
)
from domain.merchants import Scope
from ledger.engine import Ledger
from paysaga.settings import Settings
from paysaga.store import MerchantStore, Store
from providers.directory import ProviderDirectory
from wallet.engine import WalletEngine

# The largest id a cursor can name (PostgreSQL bigint); a larger one is refused as invalid.
BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class ApiKey:
    """The authenticated caller: a principal id (never the secret), its merchant, its scopes.

    A key from the database has its id as principal; a key from the settings has a hash. A
    platform key has no merchant.
    """

    principal: str
    merchant_id: str | None
    scopes: frozenset[str]
    key_id: str | None = None
    name: str = ""

    @property
    def actor(self) -> str:
        """Who did it, for the ops audit trail: the key's id, else its name."""
        return self.key_id or self.name


@dataclass
class KeyCache:
    """Database keys by the sha256 of their secret, remembered for a while off the hot path.

    Trusted only while its process hears revocations (`api.key_revocations`): `listen` turns it
    on with the function that reads them, which runs before every hit. `generation` moves at each
    eviction, so that a key looked up before its revocation was heard is not remembered after it.
    """

    max_entries: int = 10_000
    entries: dict[str, tuple[float, ApiKey]] = field(default_factory=dict)
    generation: int = 0
    drain: Callable[[], None] | None = None  # None: not listening, nothing is remembered

    def get(self, secret_hash: str) -> ApiKey | None:
        if self.drain is None:
            return None
        self.drain()  # revocations that arrived since the last request
        hit = self.entries.get(secret_hash)
        if hit is None or hit[0] <= time.monotonic():
            self.entries.pop(secret_hash, None)
            return None
        return hit[1]

    def put(self, secret_hash: str, key: ApiKey, ttl_seconds: float, generation: int) -> None:
        """Remember a key looked up when the cache was at `generation`, unless a revocation
        (of any key) was heard since."""
        if ttl_seconds <= 0 or self.drain is None or generation != self.generation:
            return
        if len(self.entries) >= self.max_entries:
            self.entries.clear()  # crude, but bounded; misses only cost a lookup
        self.entries[secret_hash] = (time.monotonic() + ttl_seconds, key)

    def evict(self, key_id: str) -> None:
        """Forget a revoked key."""
        self.generation += 1
        for secret_hash, (_, key) in list(self.entries.items()):
            if key.key_id == key_id:
                del self.entries[secret_hash]

    def listen(self, drain: Callable[[], None]) -> None:
        self.entries.clear()
        self.generation += 1
        self.drain = drain

    def stop_listening(self) -> None:
        self.entries.clear()
        self.generation += 1
        self.drain = None


@dataclass
class Services:
    """What the API holds open for its lifetime."""

    settings: Settings
    pool: AsyncConnectionPool
    store: Store
    ledger: Ledger
    temporal: Client
    wallet: WalletEngine  # the game wallet's writers (group commit), started with the app
    providers: ProviderDirectory  # adapters by account id: verifies own accounts' webhooks
    key_cache: KeyCache = field(default_factory=KeyCache)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]


async def any_key(
    svc: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> ApiKey:
    """The API key of `Authorization: Bearer <key>`, whatever its scopes."""
    scheme, _, secret = (authorization or "").partition(" ")
    key = await _find_key(svc, secret.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise Unauthorized("send a valid key as 'Authorization: Bearer <key>'")
    return key


AnyKey = Annotated[ApiKey, Depends(any_key)]


def merchant_key(key: AnyKey) -> ApiKey:
    """A merchant's key, `payments` or `ops`: either reads the merchant's objects (a platform key
    reads none); what else it may do is its scopes' say."""
    if key.merchant_id is None or not key.scopes & {Scope.PAYMENTS, Scope.OPS}:
        raise Forbidden("this call needs a merchant's key with the 'payments' or 'ops' scope")
    return key


MerchantKey = Annotated[ApiKey, Depends(merchant_key)]


def current_key(key: MerchantKey) -> ApiKey:
    """A merchant's key with the `payments` scope: the only kind that moves money."""
    if Scope.PAYMENTS not in key.scopes:
        raise Forbidden("this key lacks the 'payments' scope")
    return key


async def _find_key(svc: Services, secret: str) -> ApiKey | None:
    """A key of the settings (the dev keys), else an unrevoked key of the database."""
    if not secret:
        return None
    secret_hash = hashlib.sha256(secret.encode()).hexdigest()
    grant = svc.settings.api_keys.get(secret)
    if grant is not None:
        return ApiKey(
            secret_hash[:16],
            grant.merchant,
            frozenset(grant.scopes),
            name=f"settings:{secret_hash[:16]}",
        )
    key = svc.key_cache.get(secret_hash)
    if key is not None:
        return key
    generation = svc.key_cache.generation
    try:
        row = await svc.store.find_api_key_by_hash(secret_hash)
    except psycopg.Error as exc:
        raise ServiceUnavailable("could not check the API key; retry later") from exc
    if row is None:
        return None
    key = ApiKey(row.id, row.merchant_id, frozenset(row.scopes), key_id=row.id, name=row.name)
    svc.key_cache.put(secret_hash, key, svc.settings.api_key_cache_seconds, generation)
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


def ops_key(key: MerchantKey) -> ApiKey:
    """A merchant's API key with the `ops` scope (with or without `payments`)."""
    if Scope.OPS not in key.scopes:
        raise Forbidden("this call needs a key with the 'ops' scope")
    return key


OpsKey = Annotated[ApiKey, Depends(ops_key)]


def platform_key(key: AnyKey) -> ApiKey:
    """A platform key: it creates merchants and their keys, and does nothing else."""
    if Scope.PLATFORM not in key.scopes:
        raise Forbidden("this call needs a platform key")
    return key


PlatformKey = Annotated[ApiKey, Depends(platform_key)]


def codec_key(key: AnyKey) -> ApiKey:
    """A platform key with the `codec` scope: the installation's operator, never a merchant's.

    The codec's keys are installation-wide, so a merchant's key (even `ops`) would read every
    other merchant's customers in the Temporal histories.
    """
    if Scope.CODEC not in key.scopes or key.merchant_id is not None:
        raise Forbidden("this call needs a platform key with the 'codec' scope")
    return key


def merchant_store(svc: ServicesDep, key: CurrentKey) -> MerchantStore:
    """The tables as the caller's merchant sees them, for a key that moves money (`payments`)."""
    assert key.merchant_id is not None  # merchant_key refuses platform keys
    return svc.store.for_merchant(key.merchant_id)


MerchantData = Annotated[MerchantStore, Depends(merchant_store)]


def merchant_store_any_scope(svc: ServicesDep, key: MerchantKey) -> MerchantStore:
    """The tables as the caller's merchant sees them, for any of its keys: for reads, and for
    operator actions (which also ask for `OpsKey`). An ops-only key moves no money."""
    assert key.merchant_id is not None  # merchant_key refuses platform keys
    return svc.store.for_merchant(key.merchant_id)


MerchantView = Annotated[MerchantStore, Depends(merchant_store_any_scope)]


def idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str:
    """The required `Idempotency-Key` header of a POST that moves money."""
    if not idempotency_key:
        raise IdempotencyKeyMissing("send an Idempotency-Key header (a unique string per request)")
    if len(idempotency_key) > 255:
        raise InvalidRequest("Idempotency-Key is longer than 255 characters")
    return idempotency_key


IdempotencyKey = Annotated[str, Depends(idempotency_key)]
