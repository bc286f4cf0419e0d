"""Customer authentication at the sandbox PSP: the issuer's 3-D Secure or the bank's approval page.

A charge made with `pm_3ds_required`, `pm_3ds_required_declined` or `pm_bank_redirect` (the
latter not on `sandbox-cards`) answers `requires_action` and waits for its customer:

- `POST /{provider}/charges/{key}/authentication` `{return_url}`: where to send the customer
  (`{status: "required", url}`, under `psp_public_url` if set, else the address called), or how
  it ended (`authenticated`, `failed`).
- `GET {url}` (`/{provider}/authenticate/{charge id}`): the page, an HTML form with the amount,
  the merchant's account and two buttons, Authenticate and Fail, that `POST` the same url with
  `outcome` = `authenticated` or `failed`; the answer is `303` to `return_url?payment_id=<the
  charge's reference>` (a page saying so when the charge has no return URL).
- Authenticated, the charge goes on as its token says (`pm_3ds_required_declined`: declined
  `card_declined`); failed, it is declined `authentication_failed`. Either way its webhook
  follows `psp_webhook_delay_seconds` later, as for any charge.
- `POST /{provider}/charges/{key}/cancel`: the merchant withdraws a charge still waiting for its
  customer (declined `canceled`, webhook sent); a charge decided already is left as it is. The
  answer is the charge as it then is.
"""

from __future__ import annotations

import html
import time
from dataclasses import replace
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, StringConstraints

from sandbox_psp.behaviours import DECLINE_CODES, TOKENS
from sandbox_psp.deps import DispatcherDep, ProviderDep, PSPError, SettingsDep, StoreDep
from sandbox_psp.operation_events import webhook_events
from sandbox_psp.records import Operation
from sandbox_psp.store import OperationStore

REQUIRES_ACTION = "requires_action"
AUTHENTICATION_FAILED = "authentication_failed"  # as providers.base.AUTHENTICATION_FAILED
OUTCOMES = ("authenticated", "failed")
# Amounts on the page in the currency's exponent (the sandbox takes any ISO code; 2 if unknown).
_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3}

router = APIRouter()


class AuthenticationRequest(BaseModel):
    return_url: Annotated[str, StringConstraints(max_length=2048)] = ""


def awaiting_customer(operation: Operation) -> Operation:
    """A new charge as it waits for its customer: `requires_action` from now, no outcome yet."""
    return replace(
        operation,
        final_status=REQUIRES_ACTION,
        decline_code=None,
        settles_at=operation.created_at,
    )


@router.post("/{provider}/charges/{idempotency_key}/authentication")
async def start_authentication(
    provider: ProviderDep,
    idempotency_key: str,
    body: AuthenticationRequest,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
) -> dict[str, str | None]:
    """Where to send the customer of a charge waiting for them, or how the authentication ended."""
    charge = _charge(store, provider, idempotency_key)
    if charge.final_status == REQUIRES_ACTION:
        store.set_return_url(provider, idempotency_key, body.return_url)
        public = settings.psp_public_url or str(request.base_url)
        url = f"{public.rstrip('/')}/{provider}/authenticate/{charge.id}"
        return {"status": "required", "url": url}
    _, outcome = store.authentication(provider, idempotency_key)
    failed = outcome in ("failed", "canceled")
    return {"status": "failed" if failed else "authenticated", "url": None}


@router.post("/{provider}/charges/{idempotency_key}/cancel")
async def cancel_authorization(
    provider: ProviderDep,
    idempotency_key: str,
    store: StoreDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
) -> dict[str, object]:
    """Cancel a charge still waiting for its customer; the charge as it is afterwards."""
    charge = _charge(store, provider, idempotency_key)
    if charge.final_status == REQUIRES_ACTION:
        _decide(store, charge, "canceled", 0.0)
        dispatcher.wake()
    current = store.get(provider, idempotency_key)
    assert current is not None
    return current.view(time.time())


@router.get("/{provider}/authenticate/{charge_id}", response_class=HTMLResponse)
async def authentication_page(provider: ProviderDep, charge_id: str, store: StoreDep) -> Response:
    """The issuer's (or the bank's) page: the payment and two buttons."""
    charge = _charge_by_id(store, provider, charge_id)
    if charge.final_status != REQUIRES_ACTION:
        _, outcome = store.authentication(provider, charge.idempotency_key)
        return HTMLResponse(_page("Nothing left to do", f"<p>This payment was {outcome}.</p>"))
    bank = TOKENS[charge.method].bank_only
    title = "Approve the payment at your bank" if bank else "3-D Secure: confirm it is you"
    body = (
        f"<p>Merchant: <strong>{_text(provider)}</strong></p>"
        f"<p>Amount: <strong>{_amount(charge.amount, charge.currency)}</strong></p>"
        f"<p>Reference: {_text(charge.reference)}</p>"
        '<form method="post">'
        '<button type="submit" name="outcome" value="authenticated">Authenticate</button> '
        '<button type="submit" name="outcome" value="failed">Fail</button>'
        "</form>"
    )
    return HTMLResponse(_page(title, body))


@router.post("/{provider}/authenticate/{charge_id}", status_code=303)
async def submit_authentication(
    provider: ProviderDep,
    charge_id: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
) -> Response:
    """The customer's answer (form field `outcome`); then back to the merchant (303)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    outcome = (form.get("outcome") or [""])[0]
    if outcome not in OUTCOMES:
        raise PSPError(422, "invalid_outcome", "outcome must be authenticated or failed")
    charge = _charge_by_id(store, provider, charge_id)
    if charge.final_status == REQUIRES_ACTION:  # else decided already (or canceled): kept
        _decide(store, charge, outcome, settings.psp_webhook_delay_seconds)
        dispatcher.wake()
    return_url, _ = store.authentication(provider, charge.idempotency_key)
    if not return_url:
        return HTMLResponse(_page("Done", "<p>You can close this page.</p>"))
    return RedirectResponse(_with_payment_id(return_url, charge.reference), status_code=303)


def _decide(store: OperationStore, charge: Operation, outcome: str, delay: float) -> None:
    """Settle the charge as the authentication ended, its webhook `delay` seconds later."""
    behaviour = TOKENS[charge.method]
    succeeds = outcome == "authenticated" and behaviour.succeeds
    declines = {"authenticated": DECLINE_CODES["charge"], "failed": AUTHENTICATION_FAILED}
    decline_code = None if succeeds else declines.get(outcome, "canceled")
    now = time.time()
    decided = replace(
        charge,
        final_status="succeeded" if succeeds else "declined",
        decline_code=decline_code,
        settles_at=now + delay,
    )
    store.decide_authentication(decided, outcome, webhook_events(decided, behaviour))


def _charge(store: OperationStore, provider: str, idempotency_key: str) -> Operation:
    charge = store.get(provider, idempotency_key)
    if charge is None or charge.kind != "charge":
        raise PSPError(404, "operation_not_found", "no charge under this idempotency key")
    return charge


def _charge_by_id(store: OperationStore, provider: str, charge_id: str) -> Operation:
    charge = store.get_by_id(charge_id)
    if charge is None or charge.provider != provider or charge.kind != "charge":
        raise PSPError(404, "operation_not_found", "no such charge")
    if charge.method not in TOKENS or not TOKENS[charge.method].authentication:
        raise PSPError(404, "operation_not_found", "this charge needs no authentication")
    return charge


def _with_payment_id(return_url: str, payment_id: str) -> str:
    parts = urlsplit(return_url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"payment_id": payment_id})))


def _amount(amount: int, currency: str) -> str:
    exponent = _EXPONENTS.get(currency, 2)
    units = f"{amount // 10**exponent:,}"
    minor = f".{amount % 10**exponent:0{exponent}d}" if exponent else ""
    return f"{units}{minor} {_text(currency)}"


def _text(value: str) -> str:
    return html.escape(value, quote=True)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_text(title)} - sandbox PSP</title></head>"
        f"<body><h1>{_text(title)}</h1>{body}</body></html>"
    )
