"""The domain errors of the payments service; the API maps each to problem+json in one handler."""

from __future__ import annotations

from typing import Any


class PaysagaError(Exception):
    """A failure a client can act on, with a stable machine-readable `code`."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        if code is not None:
            self.code = code


class InvalidRequest(PaysagaError):
    status, code, title = 422, "validation_error", "The request is not valid"


class NotFound(PaysagaError):
    status, code, title = 404, "not_found", "Not found"


class Unauthorized(PaysagaError):
    status, code, title = 401, "unauthorized", "Missing or unknown API key"


class Forbidden(PaysagaError):
    status, code, title = 403, "forbidden", "The API key lacks the scope for this call"


class Conflict(PaysagaError):
    status, code, title = 409, "conflict", "Conflict with the current state"


class IdempotencyKeyMissing(PaysagaError):
    status, code, title = 400, "idempotency_key_missing", "Idempotency-Key header is required"


class IdempotencyKeyReused(PaysagaError):
    status, code, title = (
        422,
        "idempotency_key_reused",
        "Idempotency-Key was used with another request",
    )


class IdempotencyKeyInFlight(PaysagaError):
    status, code, title = 409, "idempotency_key_in_flight", "A request with this key is in progress"


class InvalidSignature(PaysagaError):
    status, code, title = 401, "invalid_signature", "Webhook signature verification failed"


class ServiceUnavailable(PaysagaError):
    status, code, title = 503, "service_unavailable", "A dependency is unavailable; retry later"
