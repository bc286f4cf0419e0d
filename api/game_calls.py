"""The game calls (bets, wins, rollbacks), answered without FastAPI's request machinery.

They are the wallet's hot path: an aggregator sends one for every spin. Their routes in
`api.routes.wallet` keep their FastAPI signatures, so that the OpenAPI document (paths, schemas,
operation ids, answers) is FastAPI's as before, but a `GameCallRoute` answers a request with a
plain ASGI handler: no dependency solving, no thread pool, no response-model pass. The body is
validated by the model's own pydantic-core validator and the key found by the functions of
`api.deps` (the settings' keys, then the cache that hears revocations). Every refusal is the error
the FastAPI route raised, raised in the same order (an unreadable body, the key, its scope, the
body's content), so that `api.problems` answers it with the same problem+json.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from api.deps import Services, any_key, current_key, merchant_key
from api.problems import domain_problem
from api.schemas import WalletTransaction
from wallet.errors import REFUSALS
from wallet.models import Decision

REPLAYED = {"Idempotent-Replayed": "true"}
NO_BODY = object()  # an empty body (JSON `null` is a body: the model refuses it)
_answer_of = WalletTransaction.__pydantic_validator__.validate_python
_json_of = WalletTransaction.__pydantic_serializer__.to_json


def decision_response(decision: Decision) -> Response:
    """A decision as HTTP: the answer, or its refusal as problem+json with the balance."""
    headers = REPLAYED if decision.replayed else None
    if decision.accepted:
        content = _json_of(_answer_of(decision.answer))
        return Response(content, media_type="application/json", headers=headers)
    refusal = REFUSALS[decision.outcome](
        decision.answer["detail"], balance=decision.answer["balance"]
    )
    response = domain_problem(refusal)
    if headers:
        response.headers.update(headers)
    return response


class GameCallRoute(APIRoute):
    """A POST route documented by FastAPI from its endpoint's signature, answered by
    `GameCallHandler`: the endpoint's body model validates, the call of `GAME_CALLS` is made.

    FastAPI builds its handler as for any route (an included router's copy too), but `handle`,
    which both reach, sends a POST to the lean handler; another method gets FastAPI's 405.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        assert self.body_field is not None, f"{path}: a game call has a body"
        model = self.body_field.field_info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        self.game_call = GameCallHandler(model, GAME_CALLS[model])

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            await self.game_call(scope, receive, send)
        else:
            await super().handle(scope, receive, send)


class GameCallFront(BaseRoute):
    """The first route the app's router tries: a game call's POST, found by its exact path.

    FastAPI's router walks every included router's routes, twice (to match, then to handle):
    for a game call, behind a hundred routes, that cost more CPU than the rest of the API's
    work. This finds it by one string comparison and hands it to its route; anything else (a
    GET of the same path: 405 as before) goes on to the routes behind.
    """

    def __init__(self, route: GameCallRoute) -> None:
        self.route = route
        self.path, self.path_format, self.path_regex = (
            route.path,
            route.path_format,
            route.path_regex,
        )
        self.methods = {"POST"}
        self.include_in_schema = False
        self._child_scope = {"endpoint": route.endpoint, "path_params": {}, "route": route}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # The raw path: behind a root_path it does not compare equal, and the routes behind
        # (which strip it) answer the call as they would.
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            return Match.FULL, dict(self._child_scope)
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.route.game_call(scope, receive, send)


def install_game_call_fronts(app: FastAPI, router: APIRouter) -> None:
    """Put a `GameCallFront` for each game call of `router` before the app's routes."""
    fronts = [GameCallFront(r) for r in router.routes if isinstance(r, GameCallRoute)]
    app.router.routes[0:0] = fronts


# body model -> the wallet call it makes; filled by api.routes.wallet
GAME_CALLS: dict[type[BaseModel], Callable[..., Any]] = {}


class GameCallHandler:
    """Plain ASGI: read the body, check the key, validate, submit, answer."""

    def __init__(self, model: type[BaseModel], make_call: Callable[..., Any]) -> None:
        self._validate = model.__pydantic_validator__.validate_python
        self._make_call = make_call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        document = decoded_body(scope, await read_body(receive))
        svc: Services = scope["app"].state.services
        key = current_key(merchant_key(await any_key(svc, header(scope, b"authorization"))))
        if document is NO_BODY:
            missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
            raise RequestValidationError([missing])
        try:
            body = self._validate(document, from_attributes=True)
        except ValidationError as exc:
            raise RequestValidationError(located(exc.errors(include_url=False), "body")) from None
        call = self._make_call(key.merchant_id, **body.model_dump())
        response = decision_response(await svc.wallet.submit(call))
        await response(scope, receive, send)


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's first value, as Starlette's `Headers.get` gives it."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def read_body(receive: Receive) -> bytes:
    """The whole body; 400 when the client leaves before sending it (as FastAPI answers)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise HTTPException(400, "There was an error parsing the body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def decoded_body(scope: Scope, body: bytes) -> Any:
    """The body as FastAPI hands it to validation: JSON when its media type says JSON, else the
    bytes themselves (which the model then refuses); `NO_BODY` when empty."""
    if not body:
        return NO_BODY
    content_type = header(scope, b"content-type")
    if not content_type:
        return body  # FastAPI's strict content type: JSON only when the request says so
    if content_type != "application/json":  # what every game integration sends: parsed below
        message = email.message.Message()
        message["content-type"] = content_type
        if message.get_content_maintype() != "application":
            return body
        subtype = message.get_content_subtype()
        if subtype != "json" and not subtype.endswith("+json"):
            return body
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from None
    except Exception as exc:
        raise HTTPException(400, "There was an error parsing the body") from exc


def located(errors: Sequence[Any], *prefix: str | int) -> list[dict[str, Any]]:
    """pydantic's errors with their location under `prefix`, as FastAPI reports them."""
    return [{**error, "loc": (*prefix, *error["loc"])} for error in errors]
