"""RFC 9457 problem+json for every error, each with a stable `code` member."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from paysaga.errors import PaysagaError

log = logging.getLogger("paysaga.api")

PROBLEM_JSON = "application/problem+json"
HTTP_CODES = {
    400: "bad_request",
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


def domain_problem(exc: PaysagaError) -> JSONResponse:
    """A domain error as problem+json. A 5xx detail stays in the log: it may name internals."""
    if exc.status >= 500:
        log.warning("%s (%s): %s", exc.code, exc.status, exc.detail, exc_info=exc.__cause__)
        return problem(exc.status, exc.code, exc.title, "retry later")
    return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)


def install_problem_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors, HTTP errors and crashes to problem+json."""

    @app.exception_handler(PaysagaError)
    async def on_domain_error(_request: Request, exc: PaysagaError) -> JSONResponse:
        return domain_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem(422, "validation_error", "The request is not valid", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        title = code.replace("_", " ").capitalize()
        # The headers matter: a 405 carries `Allow`.
        return problem(exc.status_code, code, title, str(exc.detail), headers=exc.headers)

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
