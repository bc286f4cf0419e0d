"""RFC 9457 problem+json for every error, each with a stable `code` member."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import (
    Conflict,
    CursorExpired,
    Forbidden,
    IdempotencyKeyInFlight,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    PaysagaError,
    ServiceUnavailable,
    Unauthorized,
)
from fx.errors import FxError
from paysaga.personal_data import PersonalDataUnreadable
from providers.base import InvalidEvent, WebhookSignatureInvalid
from wallet.errors import (
    BetNotFound,
    BetRolledBack,
    BetSettled,
    BonusAlreadyActive,
    BonusMaxBet,
    BonusNotActive,
    BonusNotFound,
    CustomerBlocked,
    CustomerNotFound,
    CustomerSelfExcluded,
    DuplicateTransaction,
    LossLimitReached,
    RoundClosed,
    WalletInsufficientFunds,
    WrongCurrency,
)

log = logging.getLogger("paysaga.api")

PROBLEM_JSON = "application/problem+json"
INVALID = "The request is not valid"


@dataclass(frozen=True)
class Problem:
    """How the API answers an error class: HTTP status, default `code`, title."""

    status: int
    code: str
    title: str


# THE table error class -> problem. An error's own `code` (set by its class or its raiser) wins
# over the table's. A class not reached from here (ledger and most provider errors) is a bug if
# it reaches a route, and is answered as one: 500 internal_error, logged.
PROBLEMS: dict[type[PaysagaError], Problem] = {
    InvalidRequest: Problem(422, "validation_error", INVALID),
    NotFound: Problem(404, "not_found", "Not found"),
    Unauthorized: Problem(401, "unauthorized", "Missing or unknown API key"),
    Forbidden: Problem(403, "forbidden", "The API key lacks the scope for this call"),
    Conflict: Problem(409, "conflict", "Conflict with the current state"),
    IdempotencyKeyMissing: Problem(
        400, "idempotency_key_missing", "Idempotency-Key header is required"
    ),
    IdempotencyKeyReused: Problem(
        422, "idempotency_key_reused", "Idempotency-Key was used with another request"
    ),
    IdempotencyKeyInFlight: Problem(
        409, "idempotency_key_in_flight", "A request with this key is in progress"
    ),
    ServiceUnavailable: Problem(
        503, "service_unavailable", "A dependency is unavailable; retry later"
    ),
    # The server's own data does not open (a data key dropped too early, a row altered): the
    # answer names no data; the log names the row and the key id.
    PersonalDataUnreadable: Problem(
        503, "personal_data_unreadable", "Stored personal data cannot be read"
    ),
    CursorExpired: Problem(410, "cursor_expired", "The cursor is older than the retention"),
    WebhookSignatureInvalid: Problem(
        401, "invalid_signature", "Webhook signature verification failed"
    ),
    InvalidEvent: Problem(422, "invalid_event", INVALID),
    # Each FX error names itself (unsupported_currency_pair, invalid_amount, quote_too_small...).
    FxError: Problem(422, "fx_error", INVALID),
    # The game wallet's refusals, each answered with the customer's current `balance`.
    WalletInsufficientFunds: Problem(402, "insufficient_funds", "Insufficient funds"),
    CustomerBlocked: Problem(403, "customer_blocked", "The customer is blocked"),
    BonusMaxBet: Problem(403, "bonus_max_bet", "The bet is above the bonus's maximum bet"),
    CustomerSelfExcluded: Problem(403, "customer_self_excluded", "The customer is self-excluded"),
    LossLimitReached: Problem(403, "loss_limit_reached", "The customer's loss limit is reached"),
    CustomerNotFound: Problem(404, "customer_not_found", "Not found"),
    BetNotFound: Problem(404, "bet_not_found", "Not found"),
    BonusNotFound: Problem(404, "bonus_not_found", "Not found"),
    BetRolledBack: Problem(409, "bet_rolled_back", "The bet was rolled back"),
    BetSettled: Problem(409, "bet_settled", "The bet has a win"),
    RoundClosed: Problem(409, "round_closed", "The round is closed"),
    DuplicateTransaction: Problem(
        409, "duplicate_transaction", "The transaction id was used with other content"
    ),
    BonusAlreadyActive: Problem(409, "bonus_already_active", "The customer has an active bonus"),
    BonusNotActive: Problem(409, "bonus_not_active", "The bonus has ended"),
    WrongCurrency: Problem(422, "wrong_currency", INVALID),
}
HTTP_CODES = {
    400: "bad_request",
    402: "payment_required",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "service_unavailable",
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The one way an error answer is made, so that a replay of it is the same bytes."""
    body = {"type": f"https://paysaga.dev/problems/{code}", "title": title, "status": status}
    body |= {"detail": detail, "code": code, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def lookup(error: type[PaysagaError]) -> Problem | None:
    """The table's entry for an error class: its own, else its nearest mapped ancestor's."""
    for cls in error.__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return None


def status_of(exc: PaysagaError) -> int:
    """The HTTP status an error is answered with; 500 for one the table does not map."""
    entry = lookup(type(exc))
    return 500 if entry is None else entry.status


def domain_problem(exc: PaysagaError) -> JSONResponse:
    """A mapped domain error as problem+json. A 5xx detail stays in the log: it may name internals."""
    entry = lookup(type(exc))
    if entry is None:
        raise TypeError(f"{type(exc).__name__} has no problem in api.problems.PROBLEMS")
    code = exc.code or entry.code
    if entry.status >= 500:
        log.warning("%s (%s): %s", code, entry.status, exc.detail, exc_info=exc.__cause__)
        headers = None
        if isinstance(exc, ServiceUnavailable) and exc.retry_after_seconds is not None:
            headers = {"Retry-After": str(exc.retry_after_seconds)}
        return problem(entry.status, code, entry.title, "retry later", headers=headers)
    return problem(entry.status, code, entry.title, exc.detail, **exc.extra)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the application serves at the request's path."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.path_regex.match(request.url.path):
            methods |= set(route.methods or ())
    return sorted(methods)


def _in_metadata(location: list[Any]) -> bool:
    """Whether a validation error is in a body's `metadata` (answered `invalid_metadata`)."""
    return location[:2] == ["body", "metadata"]


def install_problem_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors, HTTP errors and crashes to problem+json."""

    @app.exception_handler(PaysagaError)
    async def on_domain_error(_request: Request, exc: PaysagaError) -> JSONResponse:
        if lookup(type(exc)) is None:
            raise exc  # not an answer but a bug: on to `on_crash`, as any other exception
        return domain_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        code = (
            "invalid_metadata" if errors and all(_in_metadata(e["loc"]) for e in errors) else None
        )
        return problem(422, code or "validation_error", INVALID, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        title = code.replace("_", " ").capitalize()
        # The headers matter: a 405 carries `Allow`, which Starlette takes from the first route
        # of the path only; a path served by several routes (GET and PATCH) lists them all.
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return problem(exc.status_code, code, title, str(exc.detail), headers=headers)

    @app.exception_handler(psycopg.DataError)
    async def on_unstorable_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value the database refuses (out of range, not valid text) is the client's input;
        # the database's message may quote it, so it stays out of the answer and the log.
        log.info(
            "database refused a value on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return problem(
            422, "validation_error", "The request is not valid", "a value is out of range"
        )

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem(503, "service_unavailable", "Database unavailable", "retry later")

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500, "internal_error", "Internal error", "an unexpected error; it was logged"
        )
