"""Dependencies of the routes: settings, store, ledger, Temporal client, the caller's API key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from ledger.engine import Ledger
from paysaga.errors import Forbidden, IdempotencyKeyMissing, InvalidRequest, Unauthorized
from paysaga.settings import Settings
from paysaga.store import Store


@dataclass
class Services:
    """What the API holds open for its lifetime."""

    settings: Settings
    pool: AsyncConnectionPool
    store: Store
    ledger: Ledger
    temporal: Client


@dataclass(frozen=True)
class ApiKey:
    """The authenticated caller: a principal id (a hash, never the secret) and its scopes."""

    principal: str
    scopes: frozenset[str]


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]


def current_key(svc: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> ApiKey:
    """The API key of `Authorization: Bearer <key>`, with the `payments` scope."""
    scheme, _, secret = (authorization or "").partition(" ")
    scopes = svc.settings.api_keys.get(secret.strip()) if scheme.lower() == "bearer" else None
    if scopes is None:
        raise Unauthorized("send a valid key as 'Authorization: Bearer <key>'")
    key = ApiKey(hashlib.sha256(secret.strip().encode()).hexdigest()[:16], frozenset(scopes))
    if "payments" not in key.scopes:
        raise Forbidden("this key lacks the 'payments' scope")
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


def ops_key(key: CurrentKey) -> ApiKey:
    """An API key with the `ops` scope."""
    if "ops" not in key.scopes:
        raise Forbidden("this call needs a key with the 'ops' scope")
    return key


OpsKey = Annotated[ApiKey, Depends(ops_key)]


def idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str:
    """The required `Idempotency-Key` header of a POST that moves money."""
    if not idempotency_key:
        raise IdempotencyKeyMissing("send an Idempotency-Key header (a unique string per request)")
    if len(idempotency_key) > 255:
        raise InvalidRequest("Idempotency-Key is longer than 255 characters")
    return idempotency_key


IdempotencyKey = Annotated[str, Depends(idempotency_key)]
