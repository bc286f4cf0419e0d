"""Refuse, before any route runs, input that no route could store: NUL, unpaired surrogates, bad JSON.

PostgreSQL text cannot hold NUL and UTF-8 cannot encode an unpaired surrogate, so such a string
anywhere in the path, the query or a JSON body is answered 422 `validation_error` here, once for
every route (those added later included), instead of failing deep inside a query. A JSON body
that is not UTF-8 or not JSON is answered 400 `invalid_json`. Provider webhooks are verified over
their raw bytes first, so their bodies are left to the webhook route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem

RAW_BODY_PREFIXES = ("/v1/webhooks/",)
TEXT_RULE = "text may contain neither NUL characters nor unpaired surrogates"


class InputGuard:
    """Pure ASGI middleware: reads a JSON body once, checks it, and hands the same bytes on."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = _url_refusal(scope)
        if refusal is None and _has_json_body(scope):
            body, receive = await _buffered(receive)
            refusal = _body_refusal(body)
        if refusal is not None:
            status, code, title, detail, extra = refusal
            await problem(status, code, title, detail, **extra)(scope, receive, send)
            return
        await self._app(scope, receive, send)


Refusal = tuple[int, str, str, str, dict[str, Any]]


def _invalid_text(location: list[str | int]) -> Refusal:
    error = {"loc": location, "msg": TEXT_RULE, "type": "invalid_text"}
    return (422, "validation_error", "The request is not valid", TEXT_RULE, {"errors": [error]})


def _url_refusal(scope: Scope) -> Refusal | None:
    if not is_storable(scope["path"]):
        return _invalid_text(["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if not (is_storable(name) and is_storable(value)):
            return _invalid_text(["query", name if is_storable(name) else "?"])
    return None


def _has_json_body(scope: Scope) -> bool:
    if scope["method"] in ("GET", "HEAD", "OPTIONS") or scope["path"].startswith(RAW_BODY_PREFIXES):
        return False
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that hands it on as one message."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; the app will see an empty body
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _body_refusal(body: bytes) -> Refusal | None:
    if not body.strip():
        return None  # no body: the route says whether it needs one
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return (400, "invalid_json", "The body is not JSON", "send a UTF-8 JSON document", {})
    for location, text in _strings(document, ["body"]):
        if not is_storable(text):
            return _invalid_text(location)
    return None


def _strings(value: Any, location: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    """Every string of a JSON document, member names included, with where it is."""
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield location, key
            yield from _strings(item, [*location, key if is_storable(key) else "?"])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, [*location, index])


def is_storable(text: str) -> bool:
    """Text PostgreSQL can keep: no NUL, and encodable as UTF-8 (no unpaired surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
