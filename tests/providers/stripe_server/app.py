"""The local Stripe API: the endpoints the Stripe adapter uses, as Stripe publishes them.

Stripe's endpoints (form-encoded bodies, `Authorization: Bearer <secret key>`):
- `POST /v1/payment_intents` (`confirm=true`), `POST /v1/payment_intents/{id}/confirm`,
  `GET /v1/payment_intents/{id}`, `GET /v1/payment_intents` (list), `GET
  /v1/payment_intents/search` (`metadata['k']:'v'` and `status:'v'` clauses joined by AND);
- `POST /v1/refunds`, `GET /v1/refunds/{id}`, `GET /v1/refunds` (list);
- `GET|POST /v1/disputes/{id}` (evidence, `submit`), `POST /v1/disputes/{id}/close`;
- `GET /v1/balance_transactions` (list, `expand[]=data.source...`).
Lists take `created[gt|gte|lt|lte]`, `limit`, `starting_after`, newest first; search sees an
object only `search_lag_seconds` after it was made, lists at once (as Stripe documents).

`Idempotency-Key` (POST): the first answer of a request that began executing is saved, errors and
500s included, and replayed (`Idempotent-Replayed: true`) for the same key and parameters; other
parameters are refused (400 `idempotency_error`), a key still executing gets 409. A request
refused before it began (validation, 429) saves nothing.

Test payment methods: Stripe's `pm_card_visa` (and other `pm_card_<brand>`) succeed,
`pm_card_chargeDeclined` (`...InsufficientFunds`, `...ExpiredCard`) are declined (402
`card_error`), `pm_card_threeDSecure2Required` / `pm_card_authenticationRequired` end
`requires_action`. This server's own, which Stripe does not have: `pm_local_rate_limited` (429
before anything is made), `pm_local_server_error` (made and succeeded, answered 500),
`pm_local_slow` (made and succeeded, answered after `stall_seconds`).

Test controls, not Stripe's, under `/_test/`: `GET health`, `POST 3ds/{pi}` (`outcome=
authenticate|fail`: the customer at the redirect page), `POST disputes` (`payment_intent`,
`amount`, `reason`: the card network opens a dispute), `POST disputes/{id}/decide` (`outcome=
won|lost`), `POST age` (`seconds`: every object made that much earlier).

Webhooks: each event is POSTed to `webhook_url` with `Stripe-Signature: t=<unix>,v1=<hex
HMAC-SHA256 of "t.body" with the webhook secret>`, retried a few times on failure.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.providers.stripe_server import forms
from tests.providers.stripe_server.settings import ServerSettings
from tests.providers.stripe_server.store import (
    DISPUTE_FEE,
    EVIDENCE_DAYS,
    Store,
    StripeError,
    StripeObject,
    dispute_status_after,
    new_id,
    not_found,
    payment_intent,
    public,
)

log = logging.getLogger(__name__)

API_VERSION = "2026-10-28.endive"
DECLINES = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
}
AUTHENTICATES = {"pm_card_threeDSecure2Required", "pm_card_authenticationRequired"}
RATE_LIMITED = "pm_local_rate_limited"
SERVER_ERROR = "pm_local_server_error"
SLOW = "pm_local_slow"
LOCAL_SUCCEEDS = {SERVER_ERROR, SLOW}
DELIVERY_ATTEMPTS = 4
SEARCH_CLAUSE = re.compile(r"^(metadata\['([^']+)'\]|status):'([^']*)'$")

_idempotency_key: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "idempotency_key", default=None
)
Params = dict[str, Any]
Handler = Callable[[Request, Params, "Execution"], Awaitable[tuple[int, StripeObject]]]


class Execution:
    """Whether the request began executing: only then is its answer saved under its key."""

    began = False


class SavedAnswer:
    """An idempotency key's first answer, or the marker of its request still executing."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.status_code: int | None = None
        self.body = b""


class StripeServer:
    """The API's state and behaviour; `create_app` wires its handlers to routes."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.store = Store(settings.search_lag_seconds, self._emit)
        self.idempotency: dict[str, SavedAnswer] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(timeout=5.0)
        self.base_url = f"http://{settings.host}:{settings.port}"

    # -- requests --------------------------------------------------------------------------

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A Starlette endpoint: authentication, form decoding, idempotency, error shape."""

        async def serve(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.settings.secret_key}":
                return _json(
                    401,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": "Invalid API Key provided",
                        }
                    },
                )
            pairs = list(request.query_params.multi_items())
            if request.method == "POST":
                form = (await request.body()).decode()
                pairs += parse_qsl(form, keep_blank_values=True)
            params = forms.decode(pairs)
            key = request.headers.get("idempotency-key") if request.method == "POST" else None
            if key is None:
                status_code, body = await self._run(handler, request, params, Execution())
                return _json(status_code, body)
            return await self._idempotent(key, handler, request, params, pairs)

        return serve

    async def _idempotent(
        self,
        key: str,
        handler: Handler,
        request: Request,
        params: Params,
        pairs: list[tuple[str, str]],
    ) -> Response:
        fingerprint = json.dumps([request.url.path, sorted(pairs)])
        saved = self.idempotency.get(key)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                )
            if saved.status_code is None:
                return _error(
                    409,
                    "idempotency_error",
                    "There is currently another in-progress request using this Idempotent Key",
                    code="idempotency_key_in_use",
                )
            return Response(
                saved.body,
                saved.status_code,
                {"Idempotent-Replayed": "true", "Request-Id": new_id("req")},
                media_type="application/json",
            )
        saved = self.idempotency[key] = SavedAnswer(fingerprint)
        execution = Execution()
        token = _idempotency_key.set(key)
        try:
            status_code, body = await self._run(handler, request, params, execution)
        except BaseException:
            del self.idempotency[key]
            raise
        finally:
            _idempotency_key.reset(token)
        if not execution.began:
            del self.idempotency[key]  # refused before it began: nothing saved
        else:
            saved.status_code, saved.body = status_code, json.dumps(body).encode()
        return _json(status_code, body)

    async def _run(
        self, handler: Handler, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        try:
            return await handler(request, params, execution)
        except StripeError as error:
            return error.status_code, error.payload()

    # -- payment intents -------------------------------------------------------------------

    async def create_payment_intent(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        amount = _amount(params.get("amount"))
        currency = _currency(params.get("currency"))
        method = params.get("payment_method")
        if method == RATE_LIMITED:
            raise StripeError(
                429,
                "invalid_request_error",
                "Too many requests hit the API too quickly.",
                code="rate_limit",
            )
        _known_method(method)
        metadata = params.get("metadata") or {}
        intent = payment_intent(
            amount=amount,
            currency=currency,
            payment_method=method,
            metadata=metadata if isinstance(metadata, dict) else {},
            description=params.get("description"),
            payment_method_types=params.get("payment_method_types") or ["card"],
        )
        execution.began = True
        self.store.add(intent)
        if params.get("confirm") == "true":
            return await self._confirm(intent, params.get("return_url"))
        return 200, self._shown(intent, params)

    async def confirm_payment_intent(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        intent = self.store.get("payment_intent", request.path_params["intent"])
        if params.get("payment_method"):
            _known_method(params["payment_method"])
        if intent["status"] not in (
            "requires_payment_method",
            "requires_confirmation",
            "requires_action",
        ):
            raise StripeError(
                400,
                "invalid_request_error",
                "This PaymentIntent's status is "
                f"{intent['status']}, which does not allow it to be confirmed.",
                code="payment_intent_unexpected_state",
                payment_intent=public(intent),
            )
        execution.began = True
        intent["payment_method"] = params.get("payment_method") or intent["payment_method"]
        return await self._confirm(intent, params.get("return_url"))

    async def _confirm(self, intent: StripeObject, return_url: str | None) -> tuple[int, Any]:
        method = intent["payment_method"]
        if method in DECLINES:
            self._fail(intent, "card_declined", DECLINES[method], "Your card was declined.")
            raise StripeError(
                402,
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code=DECLINES[method],
                payment_intent=public(intent),
            )
        if method in AUTHENTICATES:
            self._require_action(intent, return_url)
            return 200, public(intent)
        self._succeed(intent)
        if method == SERVER_ERROR:
            raise StripeError(500, "api_error", "An unknown error occurred")
        if method == SLOW:
            await asyncio.sleep(self.settings.stall_seconds)
        return 200, public(intent)

    def _succeed(self, intent: StripeObject) -> None:
        charge = self.store.charge(intent)
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=charge["id"],
            next_action=None,
            last_payment_error=None,
        )
        self.store.event("payment_intent.succeeded", intent)

    def _fail(
        self, intent: StripeObject, code: str, decline_code: str | None, message: str
    ) -> None:
        intent.update(
            status="requires_payment_method",
            next_action=None,
            last_payment_error={
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
                "payment_method": {"id": intent["payment_method"], "object": "payment_method"},
            },
        )
        self.store.event("payment_intent.payment_failed", intent)

    def _require_action(self, intent: StripeObject, return_url: str | None) -> None:
        if return_url:
            next_action: StripeObject = {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": f"{self.base_url}/_test/3ds/{intent['id']}",
                    "return_url": return_url,
                },
            }
        else:
            next_action = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure"}}
        intent.update(status="requires_action", next_action=next_action)
        self.store.event("payment_intent.requires_action", intent)

    async def cancel_payment_intent(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        intent = self.store.get("payment_intent", request.path_params["intent"])
        if intent["status"] not in (
            "requires_payment_method",
            "requires_confirmation",
            "requires_action",
            "requires_capture",
        ):
            raise StripeError(
                400,
                "invalid_request_error",
                "This PaymentIntent's status is "
                f"{intent['status']}, which does not allow it to be canceled.",
                code="payment_intent_unexpected_state",
                payment_intent=public(intent),
            )
        execution.began = True
        intent.update(
            status="canceled",
            next_action=None,
            cancellation_reason=params.get("cancellation_reason"),
        )
        self.store.event("payment_intent.canceled", intent)
        return 200, public(intent)

    async def retrieve_payment_intent(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        intent = self.store.get("payment_intent", request.path_params["intent"])
        return 200, self._shown(intent, params)

    async def list_payment_intents(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        return 200, self._list("payment_intent", "/v1/payment_intents", params)

    async def search_payment_intents(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        clauses = _search_clauses(params.get("query", ""))
        now = time.time()
        found = [
            public(intent)
            for intent in self.store.of_kind("payment_intent")
            if self.store.searchable(intent, now) and all(match(intent) for match in clauses)
        ]
        limit = _limit(params)
        return 200, {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
        }

    # -- refunds ---------------------------------------------------------------------------

    async def create_refund(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise StripeError(
                400,
                "invalid_request_error",
                "Missing required param: payment_intent.",
                code="parameter_missing",
                param="payment_intent",
            )
        try:
            intent = self.store.get("payment_intent", intent_id)
        except StripeError:
            raise not_found("payment_intent", intent_id, "payment_intent") from None
        if intent["status"] != "succeeded":
            raise StripeError(
                400,
                "invalid_request_error",
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
            )
        charge = self.store.get("charge", intent["latest_charge"])
        remaining = charge["amount"] - charge["amount_refunded"]
        amount = _amount(params["amount"]) if "amount" in params else remaining
        if amount > remaining:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                param="amount",
            )
        execution.began = True
        refund = self.store.add(
            {
                "id": new_id("re"),
                "object": "refund",
                "amount": amount,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent["id"],
                "status": "succeeded",
                "reason": params.get("reason"),
                "metadata": params.get("metadata") or {},
                "created": int(time.time()),
            }
        )
        refund["balance_transaction"] = self.store.balance_transaction(
            amount=-amount,
            currency=charge["currency"],
            kind="refund",
            category="refund",
            source=refund["id"],
        )["id"]
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.store.event("refund.created", refund)
        return 200, public(refund)

    async def retrieve_refund(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        refund = self.store.get("refund", request.path_params["refund"])
        return 200, self._shown(refund, params)

    async def list_refunds(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        return 200, self._list("refund", "/v1/refunds", params)

    # -- disputes --------------------------------------------------------------------------

    async def retrieve_dispute(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        dispute = self.store.get("dispute", request.path_params["dispute"])
        return 200, self._shown(dispute, params)

    async def update_dispute(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        dispute = self.store.get("dispute", request.path_params["dispute"])
        if dispute["status"] not in ("needs_response", "warning_needs_response"):
            raise StripeError(
                400,
                "invalid_request_error",
                f"This dispute is {dispute['status']} and can no longer be updated.",
            )
        execution.began = True
        evidence = params.get("evidence") or {}
        if isinstance(evidence, dict):
            dispute["evidence"].update(evidence)
        if params.get("submit", "true") == "true":
            dispute["status"] = dispute["status"].replace("needs_response", "under_review")
            details = dispute["evidence_details"]
            details.update(has_evidence=True, submission_count=details["submission_count"] + 1)
        self.store.event("charge.dispute.updated", dispute)
        return 200, self._shown(dispute, params)

    async def close_dispute(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        dispute = self.store.get("dispute", request.path_params["dispute"])
        if dispute["status"] not in ("needs_response", "warning_needs_response"):
            raise StripeError(
                400, "invalid_request_error", f"This dispute is already {dispute['status']}."
            )
        execution.began = True
        dispute["status"] = dispute_status_after(dispute["status"], "lost")
        self.store.event("charge.dispute.closed", dispute)
        return 200, self._shown(dispute, params)

    # -- balance ---------------------------------------------------------------------------

    async def list_balance_transactions(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        return 200, self._list("balance_transaction", "/v1/balance_transactions", params)

    # -- test controls (not Stripe's) ------------------------------------------------------

    async def authenticate_customer(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        intent = self.store.get("payment_intent", request.path_params["intent"])
        if intent["status"] != "requires_action":
            raise StripeError(400, "invalid_request_error", "nothing to authenticate")
        if params.get("outcome", "authenticate") == "authenticate":
            self._succeed(intent)
        else:
            self._fail(
                intent,
                "payment_intent_authentication_failure",
                None,
                "The provided PaymentMethod has failed authentication.",
            )
        return 200, public(intent)

    async def open_dispute(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        intent = self.store.get("payment_intent", params.get("payment_intent", ""))
        charge = self.store.get("charge", intent["latest_charge"] or "")
        amount = _amount(params.get("amount", charge["amount"]))
        now = int(time.time())
        dispute = self.store.add(
            {
                "id": new_id("du"),
                "object": "dispute",
                "amount": amount,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent["id"],
                "reason": params.get("reason", "fraudulent"),
                "status": params.get("status", "needs_response"),
                "created": now,
                "evidence": {"uncategorized_text": None},
                "evidence_details": {
                    "due_by": now + EVIDENCE_DAYS * 86400,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
            }
        )
        withdrawal = self.store.balance_transaction(
            amount=-amount,
            currency=charge["currency"],
            kind="adjustment",
            category="dispute",
            source=dispute["id"],
            fee=DISPUTE_FEE,
            description="Dispute fee",
        )
        dispute["balance_transactions"] = [public(withdrawal)]
        charge["disputed"] = True
        self.store.event("charge.dispute.created", dispute)
        return 200, public(dispute)

    async def decide_dispute(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        dispute = self.store.get("dispute", request.path_params["dispute"])
        outcome = params.get("outcome", "won")
        dispute["status"] = dispute_status_after(dispute["status"], outcome)
        if dispute["status"] == "won":
            reversal = self.store.balance_transaction(
                amount=dispute["amount"],
                currency=dispute["currency"],
                kind="adjustment",
                category="dispute_reversal",
                source=dispute["id"],
            )
            dispute["balance_transactions"].append(public(reversal))
        self.store.event("charge.dispute.closed", dispute)
        return 200, public(dispute)

    async def age_objects(
        self, request: Request, params: Params, execution: Execution
    ) -> tuple[int, StripeObject]:
        self.store.age(int(params.get("seconds", "0")))
        return 200, {"aged": True}

    # -- shared ----------------------------------------------------------------------------

    def _list(self, kind: str, url: str, params: Params) -> StripeObject:
        objects = [obj for obj in self.store.of_kind(kind) if _created_matches(obj, params)]
        for field in ("payment_intent", "charge", "type", "source"):
            if field in params:
                objects = [obj for obj in objects if obj.get(field) == params[field]]
        after = params.get("starting_after")
        if after:
            ids = [obj["id"] for obj in objects]
            if after not in ids:
                raise not_found(kind, after, "starting_after")
            objects = objects[ids.index(after) + 1 :]
        limit = _limit(params)
        expand = [path.removeprefix("data.") for path in params.get("expand") or []]
        return {
            "object": "list",
            "url": url,
            "data": [self._expanded(public(obj), expand) for obj in objects[:limit]],
            "has_more": len(objects) > limit,
        }

    def _shown(self, obj: StripeObject, params: Params) -> StripeObject:
        return self._expanded(public(obj), list(params.get("expand") or []))

    def _expanded(self, obj: StripeObject, paths: list[str]) -> StripeObject:
        for path in paths:
            field, _, rest = path.partition(".")
            value = obj.get(field)
            if isinstance(value, str) and value in self.store.objects:
                obj[field] = public(self.store.objects[value])
            if rest and isinstance(obj.get(field), dict):
                obj[field] = self._expanded(dict(obj[field]), [rest])
        return obj

    def _emit(self, event_type: str, obj: StripeObject) -> None:
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1 if self.settings.webhook_url else 0,
            "request": {"id": new_id("req"), "idempotency_key": _idempotency_key.get()},
            "type": event_type,
        }
        if self.settings.webhook_url:
            task = asyncio.get_running_loop().create_task(self._deliver(event))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, event: StripeObject) -> None:
        body = json.dumps(event, indent=2).encode()  # Stripe's bodies are pretty-printed
        for attempt in range(DELIVERY_ATTEMPTS):
            timestamp = int(time.time())
            mac = hmac.new(
                self.settings.webhook_secret.encode(),
                str(timestamp).encode() + b"." + body,
                hashlib.sha256,
            ).hexdigest()
            headers = {
                "Stripe-Signature": f"t={timestamp},v1={mac}",
                "Content-Type": "application/json; charset=utf-8",
            }
            try:
                response = await self._http.post(
                    self.settings.webhook_url, content=body, headers=headers
                )
                if response.status_code < 300:
                    return
            except httpx.HTTPError as exc:
                log.warning("webhook %s not delivered: %r", event["id"], exc)
            await asyncio.sleep(0.1 * 2**attempt)  # back-off between delivery attempts


def _json(status_code: int, body: StripeObject) -> Response:
    return JSONResponse(body, status_code, {"Request-Id": new_id("req")})


def _error(status_code: int, error_type: str, message: str, code: str | None = None) -> Response:
    return _json(status_code, StripeError(status_code, error_type, message, code=code).payload())


def _amount(value: Any) -> int:
    try:
        amount = int(value)
    except (TypeError, ValueError):
        raise StripeError(
            400,
            "invalid_request_error",
            "Invalid integer: amount",
            code="parameter_invalid_integer",
            param="amount",
        ) from None
    if amount < 1:
        raise StripeError(
            400,
            "invalid_request_error",
            "Amount must be at least 1",
            code="amount_too_small",
            param="amount",
        )
    return amount


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z]{3}", value):
        raise StripeError(
            400,
            "invalid_request_error",
            f"Invalid currency: {value}.",
            code="parameter_invalid_string",
            param="currency",
        )
    return value


def _known_method(method: Any) -> None:
    known = (
        method in DECLINES
        or method in AUTHENTICATES
        or method in LOCAL_SUCCEEDS
        or (isinstance(method, str) and re.fullmatch(r"pm_card_[a-z_]+", method) is not None)
    )
    if not known:
        raise StripeError(
            400,
            "invalid_request_error",
            f"No such PaymentMethod: '{method}'",
            code="resource_missing",
            param="payment_method",
        )


def _limit(params: Params) -> int:
    return max(1, min(100, int(params.get("limit", 10))))


def _created_matches(obj: StripeObject, params: Params) -> bool:
    bounds = params.get("created")
    if not isinstance(bounds, dict):
        return True
    created = obj["created"]
    checks = {
        "gt": lambda bound: created > bound,
        "gte": lambda bound: created >= bound,
        "lt": lambda bound: created < bound,
        "lte": lambda bound: created <= bound,
    }
    return all(checks[op](int(value)) for op, value in bounds.items() if op in checks)


def _search_clauses(query: str) -> list[Callable[[StripeObject], bool]]:
    clauses: list[Callable[[StripeObject], bool]] = []
    for clause in query.split(" AND "):
        match = SEARCH_CLAUSE.match(clause.strip())
        if match is None:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Search query is malformed: {query!r}",
                code="parameter_invalid_string",
                param="query",
            )
        _, metadata_key, value = match.groups()
        clauses.append(_clause(metadata_key, value))
    return clauses


def _clause(metadata_key: str | None, value: str) -> Callable[[StripeObject], bool]:
    def matches(obj: StripeObject) -> bool:
        if metadata_key is not None:
            return bool(obj["metadata"].get(metadata_key) == value)
        return bool(obj["status"] == value)

    return matches


async def _three_d_secure_page(request: Request) -> Response:
    """The page a customer is redirected to (the test POSTs its answer instead)."""
    return HTMLResponse(f"<p>3-D Secure for {request.path_params['intent']}</p>")


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app(settings: ServerSettings) -> Starlette:
    """The Starlette app serving `settings`'s local Stripe."""
    server = StripeServer(settings)
    api = server.endpoint
    routes = [
        Route("/v1/payment_intents", api(server.create_payment_intent), methods=["POST"]),
        Route("/v1/payment_intents", api(server.list_payment_intents), methods=["GET"]),
        Route("/v1/payment_intents/search", api(server.search_payment_intents), methods=["GET"]),
        Route("/v1/payment_intents/{intent}", api(server.retrieve_payment_intent), methods=["GET"]),
        Route(
            "/v1/payment_intents/{intent}/confirm",
            api(server.confirm_payment_intent),
            methods=["POST"],
        ),
        Route(
            "/v1/payment_intents/{intent}/cancel",
            api(server.cancel_payment_intent),
            methods=["POST"],
        ),
        Route("/v1/refunds", api(server.create_refund), methods=["POST"]),
        Route("/v1/refunds", api(server.list_refunds), methods=["GET"]),
        Route("/v1/refunds/{refund}", api(server.retrieve_refund), methods=["GET"]),
        Route("/v1/disputes/{dispute}", api(server.retrieve_dispute), methods=["GET"]),
        Route("/v1/disputes/{dispute}", api(server.update_dispute), methods=["POST"]),
        Route("/v1/disputes/{dispute}/close", api(server.close_dispute), methods=["POST"]),
        Route("/v1/balance_transactions", api(server.list_balance_transactions), methods=["GET"]),
        Route("/_test/health", _health, methods=["GET"]),
        Route("/_test/3ds/{intent}", _three_d_secure_page, methods=["GET"]),
        Route("/_test/3ds/{intent}", api(server.authenticate_customer), methods=["POST"]),
        Route("/_test/disputes", api(server.open_dispute), methods=["POST"]),
        Route("/_test/disputes/{dispute}/decide", api(server.decide_dispute), methods=["POST"]),
        Route("/_test/age", api(server.age_objects), methods=["POST"]),
    ]
    return Starlette(routes=routes)
