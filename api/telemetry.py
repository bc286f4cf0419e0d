"""The API's request middleware: request id, log context, Prometheus metrics; the request id on
the server span (which the OpenTelemetry FastAPI instrumentation opens, when tracing is on)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paysaga.observability.logs import log_context
from paysaga.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
UNMATCHED_ROUTE = "unmatched"  # a 404 of no route: one label value, not one per path tried


class RequestLogContext(Mapping[str, Any]):
    """The request's ids for the log formatter; the payment id once the router matched a route."""

    def __init__(self, request_id: str, scope: Scope) -> None:
        self._request_id = request_id
        self._scope = scope  # the router adds `path_params` to this very dict

    def __getitem__(self, key: str) -> Any:
        if key == "request_id":
            return self._request_id
        if key == "payment_id":
            return self._scope.get("path_params", {}).get("payment_id")
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("request_id", "payment_id"))

    def __len__(self) -> int:
        return 2


def route_template(scope: Scope) -> str:
    """`/v1/payments/{payment_id}`, never the raw path, so that labels stay few."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class TelemetryMiddleware:
    """Pure ASGI (no body buffering): times and counts each request, tags its logs and span."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = log_context.set(RequestLogContext(request_id, scope))
        status = 500
        method = scope["method"]
        span = trace.get_current_span()  # the request's server span, or a non-recording one
        if span.is_recording():
            span.set_attribute("paysaga.request_id", request_id)

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            route = route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(method, route).observe(time.perf_counter() - started)
            log_context.reset(token)


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-Id` (if sane), else a new one."""
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER:
            given = bytes(value).decode("latin-1").strip()
            if 0 < len(given) <= 128 and given.isprintable():
                return given
    return uuid.uuid4().hex
