"""Idempotency-Key semantics: replay the first response, refuse reuse with another body."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from api.problems import PROBLEM_JSON, domain_problem, problem, status_of
from domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, PaysagaError
from paysaga.store import IdempotencyRow, MerchantStore


def request_fingerprint(path: str, body: BaseModel) -> str:
    """The same call with the same body, however it was spelled, has the same fingerprint."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


def derived_id(prefix: str, merchant_id: str, idempotency_key: str, fingerprint: str) -> str:
    """A payment id fixed by the request, so a retried start finds the first workflow.

    The merchant is part of it: two merchants' requests never derive one id.
    """
    digest = hashlib.sha256(f"{merchant_id}:{idempotency_key}:{fingerprint}".encode())
    return prefix + digest.hexdigest()[:24]


async def run_once(
    books: MerchantStore,
    ttl_hours: int,
    idempotency_key: str,
    fingerprint: str,
    status_code: int,
    handler: Callable[[], Awaitable[BaseModel]],
) -> Response:
    """Run `handler` once per (merchant, key); later calls with the same body get its answer.

    The answer is stored as the bytes sent, so that a replay, error or not, is byte for byte the
    first answer (plus `Idempotent-Replayed: true`).
    """
    existing = await books.claim_idempotency_key(idempotency_key, fingerprint, ttl_hours)
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        result = await handler()
    except PaysagaError as exc:
        if status_of(exc) >= 500:
            await books.release_idempotency_key(idempotency_key)
            raise
        response: Response = domain_problem(exc)
    except BaseException:
        await books.release_idempotency_key(idempotency_key)
        raise
    else:
        response = JSONResponse(result.model_dump(mode="json"), status_code=status_code)
    await books.complete_idempotency_key(
        idempotency_key, response.status_code, bytes(response.body).decode()
    )
    return response


def _replay(record: IdempotencyRow, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request")
    if record.response_status is None:
        raise IdempotencyKeyInFlight("the first request with this Idempotency-Key is still running")
    status = int(record.response_status)
    media = PROBLEM_JSON if status >= 400 else "application/json"
    headers = {"Idempotent-Replayed": "true"}
    raw = record.response_raw
    if raw is None:  # stored before answers were kept as sent: rebuilt as the handler makes them
        body = record.response_body
        if status >= 400:
            return problem(status, body["code"], body["title"], body["detail"], headers=headers)
        return JSONResponse(body, status, headers=headers, media_type=media)
    return Response(raw.encode(), status, headers=headers, media_type=media)
