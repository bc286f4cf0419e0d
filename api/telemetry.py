"""The API's request middleware: request id, log context, Prometheus metrics, a server span."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
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

    def __init__(self, app: ASGIApp, *, traced: bool = False) -> None:
        self.app = app
        self.traced = traced
        self.tracer = trace.get_tracer("paysaga.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = log_context.set(RequestLogContext(request_id, scope))
        status = 500
        method = scope["method"]

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        span: AbstractContextManager[Any] = (
            self.tracer.start_as_current_span(
                f"{method} {scope['path']}", kind=trace.SpanKind.SERVER
            )
            if self.traced
            else nullcontext()
        )
        try:
            with span as current:
                await self.app(scope, receive, send_with_request_id)
                if current is not None:
                    route = route_template(scope)
                    current.update_name(f"{method} {route}")
                    current.set_attributes(
                        {
                            "http.request.method": method,
                            "http.route": route,
                            "http.response.status_code": status,
                            "paysaga.request_id": request_id,
                        }
                    )
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
