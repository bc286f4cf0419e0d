"""Idempotency-Key semantics: replay the first response, refuse reuse with another body."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import ApiKey, Services
from paysaga.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, PaysagaError


def request_fingerprint(path: str, body: BaseModel) -> str:
    """The same call with the same body, however it was spelled, has the same fingerprint."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


def derived_id(prefix: str, key: ApiKey, idempotency_key: str, fingerprint: str) -> str:
    """A payment id fixed by the request, so a retried start finds the first workflow."""
    digest = hashlib.sha256(f"{key.principal}:{idempotency_key}:{fingerprint}".encode())
    return prefix + digest.hexdigest()[:24]


async def run_once(
    svc: Services,
    key: ApiKey,
    idempotency_key: str,
    fingerprint: str,
    status_code: int,
    handler: Callable[[], Awaitable[BaseModel]],
) -> JSONResponse:
    """Run `handler` once per (caller, key); later calls with the same body get its response."""
    existing = await svc.store.claim_idempotency_key(
        key.principal, idempotency_key, fingerprint, svc.settings.idempotency_key_ttl_hours
    )
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        result = await handler()
    except PaysagaError as exc:
        if exc.status >= 500:
            await svc.store.release_idempotency_key(key.principal, idempotency_key)
            raise
        body: Any = {
            "code": exc.code,
            "title": exc.title,
            "status": exc.status,
            "detail": exc.detail,
        }
        await svc.store.complete_idempotency_key(key.principal, idempotency_key, exc.status, body)
        raise
    except BaseException:
        await svc.store.release_idempotency_key(key.principal, idempotency_key)
        raise
    payload = result.model_dump(mode="json")
    await svc.store.complete_idempotency_key(key.principal, idempotency_key, status_code, payload)
    return JSONResponse(payload, status_code=status_code)


def _replay(record: dict[str, Any], fingerprint: str) -> JSONResponse:
    if record["request_hash"] != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request")
    if record["response_status"] is None:
        raise IdempotencyKeyInFlight("the first request with this Idempotency-Key is still running")
    status = int(record["response_status"])
    body = record["response_body"]
    media = "application/problem+json" if status >= 400 else "application/json"
    headers = {"Idempotent-Replayed": "true"}
    return JSONResponse(body, status_code=status, headers=headers, media_type=media)
