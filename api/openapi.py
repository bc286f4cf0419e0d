"""The OpenAPI document, completed in one place: every error an operation can answer, and auth.

FastAPI documents the success answer and its own 422. This adds, to every operation, the
problem+json answers it can give with their `code` values: those that follow from its
dependencies (an API key, the ops scope, an Idempotency-Key), from its shape (a path parameter can
name nothing: 404; a body can be malformed: 400) and from `DOMAIN_CODES` (what routes raise
themselves). It also states the constraints the API enforces for every route: no NUL or unpaired
surrogate in any text (`api.input_guard`), the `Authorization` header as a bearer security
scheme, and `Idempotency-Key` as a required header. A route added later is covered without
touching this file; naming its own codes here only makes its documentation richer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from api.deps import any_key, current_key, idempotency_key, ops_key
from api.problems import PROBLEM_JSON, lookup
from api.routes.codec import codec_reader
from api.schemas.codes import ProblemCode
from domain.errors import (
    CursorExpired,
    Forbidden,
    IdempotencyKeyInFlight,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidRequest,
    PaysagaError,
    ServiceUnavailable,
    Unauthorized,
)
from fx.errors import InvalidSourceAmount, QuoteTooSmall, UnsupportedCurrencyPair
from paysaga.personal_data import PersonalDataUnreadable
from providers.base import InvalidEvent, WebhookSignatureInvalid
from wallet.errors import (
    BetNotFound,
    BetRolledBack,
    BetSettled,
    BonusMaxBet,
    BonusNotActive,
    CustomerBlocked,
    CustomerNotFound,
    CustomerSelfExcluded,
    DuplicateTransaction,
    LossLimitReached,
    RoundClosed,
    WalletBusy,
    WalletInsufficientFunds,
    WalletStopped,
    WalletTimeout,
    WalletUnavailable,
    WrongCurrency,
)

# Text the API accepts anywhere: what PostgreSQL can store (see api.input_guard).
STORABLE_TEXT = "^[^\\u0000]*$"
BEARER = "bearerAuth"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

TITLES = {
    400: "Malformed request",
    402: "Insufficient funds",
    401: "Missing or unknown API key",
    403: "The API key lacks the scope for this call",
    404: "Not found",
    409: "Conflict with the current state",
    410: "The cursor is older than the retention",
    413: "The body is too large",
    422: "The request is not valid",
    503: "A dependency is unavailable; retry later",
}


def _code(error: type[PaysagaError]) -> str:
    """The `code` an error class is answered with: its own, else api.problems' table's."""
    entry = lookup(error)
    assert entry is not None, f"{error.__name__} has no problem in api.problems.PROBLEMS"
    return error.code or entry.code


def _raises(*errors: type[PaysagaError]) -> dict[int, list[str]]:
    """The codes of error classes by their status in api.problems' table, in the given order."""
    codes: dict[int, list[str]] = {}
    for error in errors:
        entry = lookup(error)
        assert entry is not None, f"{error.__name__} has no problem in api.problems.PROBLEMS"
        codes.setdefault(entry.status, []).append(_code(error))
    return codes


# Codes that routes raise themselves, by operation; the rest are derived (see module doc).
# Codes given by the raiser (`NotFound(..., code="customer_not_found")`) are listed as such.
DOMAIN_CODES: dict[tuple[str, str], dict[int, list[str]]] = {
    ("post", "/v1/customers"): {409: ["customer_exists"]},
    ("get", "/v1/customers"): {404: ["cursor_not_found"]},
    ("post", "/v1/deposits"): {
        404: ["customer_not_found"],
        422: ["deposit_limit_exceeded", "customer_self_excluded"],
    },
    ("post", "/v1/withdrawals"): {404: ["customer_not_found"]},
    ("post", "/v1/fx/quotes"): {
        404: ["customer_not_found"],
        **_raises(UnsupportedCurrencyPair, InvalidSourceAmount, QuoteTooSmall),
    },
    ("post", "/v1/transfers"): {
        404: ["quote_not_found", "customer_not_found"],
        409: ["quote_already_used"],
    },
    ("get", "/v1/payments"): {404: ["cursor_not_found"]},
    ("post", "/v1/payments/{payment_id}/cancel"): {409: ["payment_not_cancelable"]},
    ("post", "/v1/payments/{payment_id}/review"): {409: ["payment_not_in_review"]},
    ("post", "/v1/payments/{payment_id}/resolve"): {409: ["payment_not_requiring_intervention"]},
    ("post", "/v1/payments/{payment_id}/refunds"): {
        409: ["payment_not_refundable"],
        422: ["amount_exceeds_refundable"],
    },
    ("get", "/v1/payments/{payment_id}/refunds"): {404: ["cursor_not_found"]},
    ("post", "/v1/refunds/{refund_id}/resolve"): {409: ["refund_not_requiring_intervention"]},
    ("get", "/v1/disputes"): {404: ["cursor_not_found"]},
    ("get", "/v1/events"): _raises(CursorExpired),
    ("get", "/v1/merchants/{merchant_id}/api-keys"): {404: ["cursor_not_found"]},
    ("get", "/v1/merchant/api-keys"): {404: ["cursor_not_found"]},
    ("post", "/v1/disputes/{dispute_id}/evidence"): {409: ["dispute_not_open"]},
    ("post", "/v1/disputes/{dispute_id}/accept"): {409: ["dispute_not_open"]},
    ("post", "/v1/webhooks/providers/{provider}"): {
        404: ["provider_not_found"],
        **_raises(WebhookSignatureInvalid, InvalidEvent),
    },
    ("post", "/codec/encode"): {422: ["codec_error"]},
    ("post", "/codec/decode"): {422: ["codec_error"]},
    ("post", "/v1/ops/notifications/dead-letters/{event_id}/redeliver"): {
        409: ["dead_letter_redelivering"]
    },
    ("post", "/v1/wallet/bets"): _raises(
        WalletInsufficientFunds,
        CustomerBlocked,
        BonusMaxBet,
        CustomerSelfExcluded,
        LossLimitReached,
        CustomerNotFound,
        BetRolledBack,
        RoundClosed,
        DuplicateTransaction,
        WrongCurrency,
    ),
    ("post", "/v1/wallet/credits"): _raises(CustomerNotFound, DuplicateTransaction),
    ("post", "/v1/wallet/wins"): _raises(
        CustomerNotFound,
        BetNotFound,
        BetRolledBack,
        RoundClosed,
        DuplicateTransaction,
        WrongCurrency,
    ),
    ("post", "/v1/wallet/rollbacks"): _raises(
        CustomerNotFound, BetNotFound, BetSettled, RoundClosed, DuplicateTransaction, WrongCurrency
    ),
    ("post", "/v1/customers/{customer_id}/bonuses"): {
        409: ["bonus_already_active", "customer_self_excluded"]
    },
    ("post", "/v1/bonuses/{bonus_id}/forfeit"): _raises(BonusNotActive),
}
# Game calls: the game provider's transaction id is their idempotency key (no header).
REPLAYED_BY_TRANSACTION_ID = {
    ("post", "/v1/wallet/bets"),
    ("post", "/v1/wallet/wins"),
    ("post", "/v1/wallet/rollbacks"),
    ("post", "/v1/wallet/credits"),
}
# Calls booked by the wallet's writers: 503 with Retry-After when a writer cannot book them now.
WALLET_WRITER_OPERATIONS = REPLAYED_BY_TRANSACTION_ID | {
    ("post", "/v1/customers/{customer_id}/bonuses")
}
WALLET_WRITER_CODES = _raises(WalletBusy, WalletTimeout, WalletStopped, WalletUnavailable)
RETRY_AFTER = {
    "description": "seconds to wait before sending the same call again",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

# Operations whose request body the route reads itself (raw bytes), documented here.
RAW_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/webhooks/providers/{provider}"): {
        "description": "The provider's event, signed over these exact bytes.",
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}
SIGNED_HEADERS: dict[tuple[str, str], str] = {
    ("post", "/v1/webhooks/providers/{provider}"): "Sandbox-Signature",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem; `code` is stable and machine-readable.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": [code.value for code in ProblemCode]},
        "errors": {"type": "array", "items": {"type": "object"}},
        "balance": {
            "description": "a game wallet refusal: the customer's balance now",
            "type": "object",
            "properties": {
                "cash": {"type": "integer"},
                "bonus": {"type": "integer"},
                "total": {"type": "integer"},
            },
        },
    },
}


# Operation ids (a generated client's method names) are the route functions' names, which read as
# verb_object; these few are renamed to say what they act on.
OPERATION_IDS = {
    "livez": "get_liveness",
    "readyz": "get_readiness",
    "healthz": "get_health",
    "get_balances": "get_customer_balances",
    "set_limits": "set_customer_limits",
    "get_limits": "get_customer_limits",
    "self_exclude": "self_exclude_customer",
    "list_limit_changes": "list_customer_limit_changes",
    "submit_evidence": "submit_dispute_evidence",
    "redeliver": "redeliver_dead_letter",
    "create_merchant_key": "create_merchant_api_key",
    "list_merchant_keys": "list_merchant_api_keys",
    "revoke_merchant_key": "revoke_merchant_api_key",
    "list_own_keys": "list_own_api_keys",
    "revoke_own_key": "revoke_own_api_key",
    "list_mismatches": "list_reconciliation_mismatches",
    "list_audit_log": "list_ops_actions",
    "metrics": "get_metrics",
}


def operation_id(route: APIRoute) -> str:
    """A route's operation id: `create_deposit`, `get_payment`, `list_payments`..."""
    return OPERATION_IDS.get(route.name, route.name)


def install_openapi(app: FastAPI, *, anonymous_codec: bool = False) -> None:
    """Replace `app.openapi` by the completed document (built once, on first request).

    `anonymous_codec`: the codec endpoint also serves the local Temporal UI without a key
    (development only), so its key is documented as optional.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_openapi(app, anonymous_codec=anonymous_codec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete_openapi(app: FastAPI, *, anonymous_codec: bool = False) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {BEARER: {"type": "http", "scheme": "bearer"}}
    for schema in components["schemas"].values():
        _constrain_text(schema)
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        calls = set(_calls(route.dependant))
        path = str(route.path_format)
        for method in route.methods or ():
            operation = document["paths"].get(path, {}).get(method.lower())
            if operation is not None:
                _complete(operation, method.lower(), path, calls)
                if anonymous_codec and codec_reader in calls:
                    operation["security"] = [{BEARER: []}, {}]
    # Every 422 is a Problem (api.problems), never FastAPI's own validation error shape.
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
    return document


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _complete(
    operation: dict[str, Any], method: str, path: str, calls: set[Callable[..., Any]]
) -> None:
    key = (method, path)
    authenticated = bool(calls & {any_key, current_key, ops_key, codec_reader})
    idempotent = idempotency_key in calls
    parameters = [
        p for p in operation.get("parameters", []) if p["name"].lower() != "authorization"
    ]
    for parameter in parameters:
        if parameter["name"].lower() == "idempotency-key":
            parameter["required"] = True
            parameter["description"] = "A unique string per request; replays answer the first."
            parameter["schema"] = {"type": "string", "minLength": 1, "maxLength": 255}
        _constrain_text(parameter.get("schema", {}))
    if key in SIGNED_HEADERS:
        parameters.append(
            {
                "name": SIGNED_HEADERS[key],
                "in": "header",
                "required": True,
                "schema": {"type": "string", "pattern": STORABLE_TEXT},
                "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of `t.body`>",
            }
        )
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    if key in RAW_BODIES:
        operation["requestBody"] = RAW_BODIES[key]
    if authenticated:
        operation["security"] = [{BEARER: []}]

    codes = _raises(InvalidRequest, ServiceUnavailable, PersonalDataUnreadable)
    if "requestBody" in operation:
        # A raw body (a provider's event) is the route's to judge; others are api.input_guard's.
        codes[400] = ["bad_request"] if key in RAW_BODIES else ["invalid_json", "json_too_deep"]
        codes[400].append("bad_request")
        codes[413] = ["payload_too_large"]
    if authenticated:
        codes |= _raises(Unauthorized, Forbidden)
    if idempotent:
        codes.setdefault(400, []).insert(0, _code(IdempotencyKeyMissing))
        codes |= _raises(IdempotencyKeyInFlight)
        codes[422].append(_code(IdempotencyKeyReused))
    if any(p["in"] == "path" for p in parameters):
        codes[404] = ["not_found"]
    for status, domain in DOMAIN_CODES.get(key, {}).items():
        codes[status] = [*codes.get(status, []), *domain]
    if key in WALLET_WRITER_OPERATIONS:
        for status, domain in WALLET_WRITER_CODES.items():
            codes[status] = [*codes.get(status, []), *domain]
    responses = operation.setdefault("responses", {})
    for status, listed in sorted(codes.items()):
        if str(status) in responses and status != 422:
            continue  # the route documents this answer itself (e.g. /healthz's 503)
        responses[str(status)] = _problem_response(status, listed)
    if key in WALLET_WRITER_OPERATIONS:
        responses["503"].setdefault("headers", {})["Retry-After"] = RETRY_AFTER
    operation["responses"] = responses = dict(sorted(responses.items()))
    if idempotent or key in REPLAYED_BY_TRANSACTION_ID:
        for status, response in responses.items():
            if status.startswith("2"):
                response.setdefault("headers", {})["Idempotent-Replayed"] = {
                    "description": "`true` when this is the stored answer of an earlier request",
                    "schema": {"type": "string", "enum": ["true"]},
                }


def _problem_response(status: int, codes: list[str]) -> dict[str, Any]:
    unique = list(dict.fromkeys(codes))
    return {
        "description": f"{TITLES.get(status, 'Error')}: `code` is one of {', '.join(unique)}",
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "allOf": [{"$ref": "#/components/schemas/Problem"}],
                    "properties": {"code": {"type": "string", "examples": unique}},
                }
            }
        },
    }


def _constrain_text(schema: dict[str, Any]) -> None:
    """Add the storable-text pattern to every free string of a schema, recursively."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not (
        {"pattern", "enum", "const", "format"} & set(schema)
    ):
        schema["pattern"] = STORABLE_TEXT
    if schema.get("type") == "object" and schema.get("additionalProperties", False) is not False:
        schema.setdefault("propertyNames", {"pattern": STORABLE_TEXT})  # a map's keys are text
    for key in ("properties", "$defs"):
        for sub in schema.get(key, {}).values():
            _constrain_text(sub)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            _constrain_text(schema[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, []):
            _constrain_text(sub)
