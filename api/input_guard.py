"""Refuse, before any route runs, input that no route could store: NUL, unpaired surrogates, bad JSON.

PostgreSQL text cannot hold NUL and UTF-8 cannot encode an unpaired surrogate, so such a string
anywhere in the path, the query or a JSON body is answered 422 `validation_error` here, once for
every route (those added later included), instead of failing deep inside a query. A JSON body
that is not UTF-8 or not JSON is answered 400 `invalid_json`, one nested deeper than
`JSON_DEPTH_MAX` 400 `json_too_deep`. Provider webhooks are verified over their raw bytes first,
so their bodies' content is left to the webhook route.

Every body, of any route and media type, is counted as it arrives and refused 413
`payload_too_large` once it passes its limit (at once when its Content-Length does), before any
route, and so any key or signature check, sees it: the API never holds more than the limit.
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

MiB = 1024 * 1024
BODY_BYTES_MAX = 1 * MiB  # PRODUCT.md, API conventions
# By path prefix. A provider's event is a few KiB. The codec takes what Temporal holds: a
# payload of up to 2 MiB (Temporal's blob limit), base64 in JSON, within Temporal's own 4 MiB
# gRPC message limit, so that the UI can show every payload it lists.
BODY_BYTES_MAX_BY_PREFIX = (("/v1/webhooks/providers/", 64 * 1024), ("/codec/", 4 * MiB))
# Far deeper than any request of the API; Python's parser would raise at about 1,000.
JSON_DEPTH_MAX = 64


class InputGuard:
    """Pure ASGI middleware: reads a body once, up to its limit, checks it, hands the bytes on."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = _url_refusal(scope)
        if refusal is None and _has_body(scope):
            limit = body_bytes_max(scope["path"])
            body: bytes | None = None
            if _declared_length(scope) <= limit:
                body, receive = await _buffered(receive, limit)
            if body is None:
                refusal = _too_large(limit)
            elif _is_json(scope):
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


def body_bytes_max(path: str) -> int:
    """The largest body a request to `path` may send."""
    for prefix, limit in BODY_BYTES_MAX_BY_PREFIX:
        if path.startswith(prefix):
            return limit
    return BODY_BYTES_MAX


def _too_large(limit: int) -> Refusal:
    detail = f"a body sent here may hold at most {limit} bytes"
    return (413, "payload_too_large", "The body is too large", detail, {})


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return bytes(value)
    return None


def _has_body(scope: Scope) -> bool:
    """Whether the request announces a body (RFC 9112, 6.3): a length, or a transfer coding."""
    declared = _header(scope, b"content-length")
    return _header(scope, b"transfer-encoding") is not None or declared not in (None, b"0")


def _declared_length(scope: Scope) -> int:
    """The Content-Length, or 0 when there is none (a chunked body is counted as it comes)."""
    declared = _header(scope, b"content-length")
    try:
        return int(declared) if declared is not None else 0
    except ValueError:
        return 0  # the server refused a malformed length before the app saw it


def _is_json(scope: Scope) -> bool:
    if scope["method"] in ("GET", "HEAD", "OPTIONS") or scope["path"].startswith(RAW_BODY_PREFIXES):
        return False
    content_type = _header(scope, b"content-type")
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


async def _buffered(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole body (None once it passes `limit` bytes), and a `receive` that hands it on as
    one message."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; the app will see an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, receive  # the rest is never read: the server drops it
        chunks.append(chunk)
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
    too_deep: Refusal = (
        400,
        "json_too_deep",
        "The body is nested too deep",
        f"arrays and objects may nest at most {JSON_DEPTH_MAX} deep",
        {},
    )
    try:
        document = json.loads(body.decode("utf-8"))
    except RecursionError:  # how Python's parser refuses a document nested too deep for it
        return too_deep
    except (UnicodeDecodeError, ValueError):
        return (400, "invalid_json", "The body is not JSON", "send a UTF-8 JSON document", {})
    if b"\\u" not in body and body.count(b"[") + body.count(b"{") <= JSON_DEPTH_MAX:
        # The common case, without walking the document: a NUL or a lone surrogate can only
        # come in as a \u escape (strict JSON refuses a raw control character, UTF-8 a raw
        # surrogate), and so few brackets cannot nest too deep.
        return None
    if nests_deeper_than(document, JSON_DEPTH_MAX):
        return too_deep
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


def nests_deeper_than(document: Any, depth_max: int) -> bool:
    """Whether a JSON document's arrays and objects nest more than `depth_max` deep (walked
    without recursion, so that any depth is measured)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            if depth > depth_max:
                return True
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    return False


def is_storable(text: str) -> bool:
    """Text PostgreSQL can keep: no NUL, and encodable as UTF-8 (no unpaired surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
