"""The sandbox PSP's HTTP API: charges, payouts, refunds, status, records and settlement report.

Disputes have their own routes (`sandbox_psp.disputes`); their lines join the settlement report.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints

from sandbox_psp.authentication import awaiting_customer
from sandbox_psp.authentication import router as authentication_router
from sandbox_psp.behaviours import (
    DECLINE_CODES,
    FLAKY_REFUSALS,
    PRIMARY_PROVIDER,
    PROVIDERS,
    TOKENS,
    Behaviour,
)
from sandbox_psp.deps import Amount, Currency, ProviderDep, PSPError, StoreDep, Text
from sandbox_psp.disputes import dispute_settlement_lines
from sandbox_psp.disputes import router as disputes_router
from sandbox_psp.operation_events import webhook_events
from sandbox_psp.outages import ProviderModes
from sandbox_psp.outages import router as outages_router
from sandbox_psp.records import Operation
from sandbox_psp.settings import SandboxSettings
from sandbox_psp.store import OperationStore
from sandbox_psp.webhook_dispatch import WebhookDispatcher

logger = logging.getLogger("sandbox_psp")

ID_PREFIXES = {"charge": "ch_", "payout": "po_", "refund": "re_"}
# `pm_pending_forever` settles this far in the future (a century): never, for any test or demo.
PENDING_FOREVER_SECONDS = 100 * 365 * 86_400.0


class ChargeRequest(BaseModel):
    """Charge a payment method (its token picks the sandbox behaviour)."""

    idempotency_key: Text
    reference: Text
    amount: Amount
    currency: Currency
    payment_method: Text


class PayoutRequest(BaseModel):
    """Pay out to a destination (its token picks the sandbox behaviour)."""

    idempotency_key: Text
    reference: Text
    amount: Amount
    currency: Currency
    destination: Text


class RefundRequest(BaseModel):
    """Refund (part of) a succeeded charge of the same provider."""

    idempotency_key: Text
    reference: Text
    charge_idempotency_key: Text
    amount: Amount
    currency: Currency


router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@router.post("/{provider}/charges", status_code=201)
async def create_charge(
    provider: ProviderDep, body: ChargeRequest, request: Request, store: StoreDep
) -> JSONResponse:
    """Charge a payment method; the outcome comes later by webhook and polling."""
    return await _create(request, store, provider, "charge", body, body.payment_method)


@router.post("/{provider}/payouts", status_code=201)
async def create_payout(
    provider: ProviderDep, body: PayoutRequest, request: Request, store: StoreDep
) -> JSONResponse:
    """Pay out to a destination; the outcome comes later by webhook and polling."""
    return await _create(request, store, provider, "payout", body, body.destination)


@router.post("/{provider}/refunds", status_code=201)
async def create_refund(
    provider: ProviderDep, body: RefundRequest, request: Request, store: StoreDep
) -> JSONResponse:
    """Refund a succeeded charge; decided at once (a webhook still follows).

    Declined (`refund_declined`) when the charge's token is `pm_no_refund`.
    """
    return await _create(request, store, provider, "refund", body, None)


@router.get("/{provider}/operations/{idempotency_key}")
async def get_operation(provider: ProviderDep, idempotency_key: str, store: StoreDep) -> Any:
    """The operation recorded under an idempotency key, with its current status."""
    operation = store.get(provider, idempotency_key)
    if operation is None:
        raise PSPError(404, "operation_not_found", "no operation under this idempotency key")
    return operation.view(time.time())


@router.get("/{provider}/operations")
async def list_operations(
    provider: ProviderDep, store: StoreDep, reference: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The provider's own records, by merchant reference."""
    now = time.time()
    return {"data": [operation.view(now) for operation in store.by_reference(provider, reference)]}


@router.get("/{provider}/settlement-report")
async def settlement_report(
    provider: ProviderDep,
    store: StoreDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Lines settled in (since, until]: succeeded operations, adjustments, disputes.

    Every amount is positive; the kind says which way it went for the merchant (see
    `providers.base.SettlementLine`).
    """
    # A line is in exactly one window: bounds compare as the same floats in every request.
    now = time.time()
    upper = now if until is None else _timestamp(until)
    if upper > now:
        # Lines may still settle before a future bound: the window would miss them for good.
        raise PSPError(422, "window_not_closed", "until is in the future")
    lower = None if since is None else _timestamp(since)
    rows = [
        {
            "id": operation.id,
            "kind": operation.kind,
            "idempotency_key": operation.idempotency_key,
            "reference": operation.reference,
            "amount": operation.amount,
            "currency": operation.currency,
            "settled_at": operation.view(operation.settles_at)["updated_at"],
        }
        for operation in store.settled_succeeded(provider, upper, lower)
    ]
    adjustments = store.settlement_adjustments(provider, upper, lower)
    disputes = dispute_settlement_lines(store, provider, upper, lower)
    return {"provider": provider, "data": rows + adjustments + disputes}


def _timestamp(moment: datetime) -> float:
    """A query bound as a unix time; a bound without an offset is UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class SettlementAdjustment(BaseModel):
    """A settlement line without an operation, as a PSP's books sometimes show."""

    kind: Annotated[str, StringConstraints(pattern="^(charge|payout|refund)$")]
    reference: Text
    amount: Amount
    currency: Currency


class SandboxAccount(BaseModel):
    """An account a merchant opens at the sandbox PSP: its id is the provider path segment its
    calls use (paysaga's provider account id), and its webhooks, sent to `<webhook url>/<id>`,
    are signed with `webhook_secret`."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    webhook_secret: Annotated[str, StringConstraints(min_length=16, max_length=255)]


@router.post("/_sandbox/accounts", status_code=201)
async def open_account(body: SandboxAccount, store: StoreDep) -> dict[str, str]:
    """Sandbox only: open an account (or give it a new webhook secret), as a merchant does in a
    PSP's dashboard."""
    if body.id in PROVIDERS:
        raise PSPError(409, "account_exists", f"{body.id!r} is one of this PSP's own providers")
    store.open_account(body.id, body.webhook_secret)
    return {"id": body.id}


@router.post("/{provider}/_sandbox/settlement-adjustments", status_code=201)
async def add_settlement_adjustment(
    provider: ProviderDep, body: SettlementAdjustment, store: StoreDep
) -> dict[str, Any]:
    """Sandbox only: put a line in the settlement report that our ledger never saw."""
    adjustment_id = f"adj_{secrets.token_hex(8)}"
    store.add_settlement_adjustment(
        adjustment_id, provider, body.kind, body.reference, body.amount, body.currency, time.time()
    )
    return {"id": adjustment_id, **body.model_dump()}


async def _create(
    request: Request,
    store: OperationStore,
    provider: str,
    kind: str,
    body: BaseModel,
    token: str | None,
) -> JSONResponse:
    settings: SandboxSettings = request.app.state.settings
    modes: ProviderModes = request.app.state.modes
    try:
        answer = await _create_once(request, store, provider, kind, body, token, settings, modes)
    except PSPError as exc:
        unavailable = exc.status_code in (429, 503)
        modes.count(provider, kind, "unavailable" if unavailable else "answered")
        raise
    modes.count(provider, kind, "answered")
    return answer


async def _create_once(
    request: Request,
    store: OperationStore,
    provider: str,
    kind: str,
    body: BaseModel,
    token: str | None,
    settings: SandboxSettings,
    modes: ProviderModes,
) -> JSONResponse:
    if provider in modes.down:
        raise PSPError(503, "provider_unavailable", f"{provider} is down (sandbox mode)")
    fields = body.model_dump()
    key: str = fields["idempotency_key"]
    request_hash = hashlib.sha256(json.dumps([kind, fields], sort_keys=True).encode()).hexdigest()
    existing = store.get(provider, key)
    if existing is not None:
        if existing.request_hash != request_hash:
            raise PSPError(
                422, "idempotency_key_reused", "this idempotency key was used with another request"
            )
        if provider in modes.slow:
            await asyncio.sleep(settings.psp_stall_seconds)
        return JSONResponse(existing.view(time.time()), headers={"Idempotent-Replayed": "true"})

    if token is None:
        charge = _refundable_charge(store, provider, fields)
        charge_behaviour = TOKENS.get(charge.method, Behaviour())
        behaviour, method = Behaviour(succeeds=not charge_behaviour.refunds_declined), charge.method
    else:
        if token not in TOKENS:
            raise PSPError(422, "unsupported_payment_method", f"unknown sandbox token {token!r}")
        behaviour, method = TOKENS[token], token
    if behaviour.primary_down and provider == PRIMARY_PROVIDER:
        raise PSPError(503, "provider_unavailable", f"{provider} is down for {token}")
    if behaviour.bank_only and provider == PRIMARY_PROVIDER:
        raise PSPError(422, "unsupported_payment_method", f"{provider} does not take pay by bank")
    if behaviour.flaky and store.count_refusal(provider, key) <= FLAKY_REFUSALS:
        raise PSPError(503, "temporarily_unavailable", "try again with the same idempotency key")

    now = time.time()
    succeeds = behaviour.succeeds
    operation = Operation(
        provider=provider,
        idempotency_key=key,
        id=ID_PREFIXES[kind] + secrets.token_hex(12),
        kind=kind,
        request_hash=request_hash,
        reference=fields["reference"],
        amount=fields["amount"],
        currency=fields["currency"],
        method=method,
        charge_idempotency_key=fields.get("charge_idempotency_key"),
        final_status="succeeded" if succeeds else "declined",
        decline_code=None if succeeds else DECLINE_CODES[kind],
        created_at=now,
        settles_at=_settles_at(kind, behaviour, now, settings.psp_webhook_delay_seconds),
    )
    if behaviour.authentication and kind == "charge":
        operation = awaiting_customer(operation)  # decided on its authentication page
        store.record(operation, [])
    else:
        store.record(operation, webhook_events(operation, behaviour))
    dispatcher: WebhookDispatcher = request.app.state.dispatcher
    dispatcher.wake()
    if behaviour.stall or provider in modes.slow:
        # Processed and recorded, but the answer comes after the client has given up.
        await asyncio.sleep(settings.psp_stall_seconds)
    return JSONResponse(operation.view(time.time()), status_code=201)


def _settles_at(kind: str, behaviour: Behaviour, now: float, delay_seconds: float) -> float:
    """When the operation's outcome shows: refunds at once, `pm_pending_forever` never."""
    if behaviour.pending_forever:
        return now + PENDING_FOREVER_SECONDS
    return now if kind == "refund" else now + delay_seconds


def _refundable_charge(store: OperationStore, provider: str, fields: dict[str, Any]) -> Operation:
    charge = store.get(provider, fields["charge_idempotency_key"])
    if charge is None or charge.kind != "charge":
        raise PSPError(422, "charge_not_found", "no charge under charge_idempotency_key")
    if not (charge.is_settled(time.time()) and charge.final_status == "succeeded"):
        raise PSPError(422, "charge_not_refundable", "only a succeeded charge can be refunded")
    if fields["currency"] != charge.currency:
        raise PSPError(422, "currency_mismatch", "a refund is in the charge's currency")
    dispute = store.dispute_of_charge(provider, charge.idempotency_key)
    if dispute is not None and dispute.status(time.time()) != "won":
        # As card PSPs do: the disputed money is already on its way back to the cardholder.
        raise PSPError(422, "charge_disputed", "a disputed charge cannot be refunded")
    refundable = charge.amount - store.refunded_amount(provider, charge.idempotency_key)
    if fields["amount"] > refundable:
        raise PSPError(422, "amount_exceeds_charge", f"at most {refundable} can be refunded")
    return charge


async def _psp_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PSPError)
    # As a PSP logs a refusal: the message may quote the account (the log filter masks it).
    logger.info("refused %s: %s %s", request.url.path, exc.code, exc.message)
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status_code)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse(
        {"error": "invalid_request", "message": "the request is not valid", "details": details},
        status_code=422,
    )


def create_app(settings: SandboxSettings) -> FastAPI:
    """The sandbox PSP application; its lifespan opens the store and runs the webhook dispatcher."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = OperationStore(
            settings.psp_database_path or settings.data_dir / "sandbox_psp.sqlite3"
        )
        async with httpx.AsyncClient() as client:
            dispatcher = WebhookDispatcher(settings, store, client)
            app.state.settings, app.state.store, app.state.dispatcher = settings, store, dispatcher
            app.state.modes = ProviderModes()
            task = asyncio.create_task(dispatcher.run(), name="webhook-dispatcher")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                store.close()

    app = FastAPI(title="paysaga sandbox PSP", lifespan=lifespan)
    app.include_router(router)
    app.include_router(disputes_router)
    app.include_router(outages_router)
    app.include_router(authentication_router)
    app.add_exception_handler(PSPError, _psp_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app
