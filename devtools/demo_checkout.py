"""The dev stack's demo checkout: a merchant's page that takes a deposit through the public API.

Not a route of the API: `make dev` runs it as a process of its own (`python -m
devtools.demo_checkout`, http://127.0.0.1:8300), a merchant's backend that holds the
development merchant's key server side; the browser sees only this page and the provider's.

- `GET /`: the checkout form: an amount in EUR and a sandbox payment method.
- `POST /checkout`: creates a customer and a deposit (`return_url`: this page), waits until the
  deposit leaves `processing`, then sends the browser (303) to `next_action`'s url, the sandbox's
  authentication page, or straight to the status page when there is nothing to authenticate.
- `GET /?payment_id=dep_...`: where the provider sends the customer back: the deposit's status,
  read again every half second until it is terminal, and the customer's wallet balance.
- `GET /payments/{payment_id}`: what the status page reads (status, failure code, balance).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from paysaga.settings import DEV_MERCHANT_KEY, get_settings

CURRENCY = "EUR"
AMOUNT_MAJOR_MAX = Decimal("50000")  # a larger deposit is declined by the sandbox's risk rules
TERMINAL = ("succeeded", "failed", "canceled")
# How long the checkout waits for the provider's answer before showing the status page instead.
LEAVES_PROCESSING_SECONDS = 20.0
METHODS = {
    "pm_3ds_required": "Card, 3-D Secure: authenticated, it succeeds",
    "pm_3ds_required_declined": "Card, 3-D Secure: authenticated, then declined",
    "pm_bank_redirect": "Pay by bank: approve it at your bank",
    "pm_ok": "Card, no authentication",
}
HEADLINES = {
    "processing": "Processing your deposit...",
    "requires_action": "Waiting for your authentication...",
    "succeeded": "Deposit succeeded: the amount is in your wallet.",
    "failed": "Deposit failed: nothing was taken from you.",
    "canceled": "Deposit canceled: nothing was taken from you.",
}


class DemoError(Exception):
    """The API refused a call of the checkout; `detail` says why, for the page."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def create_app(api_url: str, api_key: str = DEV_MERCHANT_KEY) -> FastAPI:
    """The demo checkout, calling the paysaga API at `api_url` with `api_key`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as client:
            app.state.api = client
            yield

    app = FastAPI(title="paysaga demo checkout", lifespan=lifespan, openapi_url=None)
    app.add_api_route("/", checkout_page, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/checkout", checkout, methods=["POST"])
    app.add_api_route("/payments/{payment_id}", payment_state, methods=["GET"])
    return app


async def checkout_page(request: Request, payment_id: str = "") -> HTMLResponse:
    """The form, or the status of the deposit the customer came back with."""
    if not payment_id:
        return HTMLResponse(_form_page())
    try:
        state = await _payment_state(request.app.state.api, payment_id)
    except DemoError as exc:
        return HTMLResponse(_form_page(error=exc.detail), status_code=404)
    return HTMLResponse(_status_page(state))


async def checkout(request: Request) -> Response:
    """Create a customer and their deposit, then send the browser where the deposit needs it."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    amount_text = (form.get("amount") or [""])[0]
    method = (form.get("payment_method") or [""])[0]
    amount = _minor_units(amount_text)
    if amount is None or method not in METHODS:
        error = f"Enter an amount between 0.01 and {AMOUNT_MAJOR_MAX:,} EUR and pick a method."
        return HTMLResponse(_form_page(error=error, amount=amount_text), status_code=422)
    return_url = str(request.url_for("checkout_page"))
    try:
        payment = await _start_deposit(request.app.state.api, amount, method, return_url)
    except DemoError as exc:
        return HTMLResponse(_form_page(error=exc.detail, amount=amount_text), status_code=502)
    action = payment.get("next_action") or {}
    if payment["status"] == "requires_action" and action.get("type") == "redirect_to_url":
        return RedirectResponse(action["redirect_to_url"]["url"], status_code=303)
    return RedirectResponse(f"{return_url}?payment_id={quote(payment['id'])}", status_code=303)


async def payment_state(request: Request, payment_id: str) -> JSONResponse:
    """The deposit's status and its customer's balance, as the status page shows them."""
    try:
        return JSONResponse(await _payment_state(request.app.state.api, payment_id))
    except DemoError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=404)


async def _start_deposit(
    api: httpx.AsyncClient, amount: int, method: str, return_url: str
) -> dict[str, Any]:
    """A new customer's deposit, once the provider has answered (or after a bounded wait)."""
    customer = {
        "external_id": f"demo-{uuid.uuid4()}",
        "full_name": "Demo Customer",
        "birth_date": "1990-01-01",
        "country": "DE",
    }
    created = await _call(api, "POST", "/v1/customers", customer)
    deposit = {
        "customer_id": created["id"],
        "amount": amount,
        "currency": CURRENCY,
        "payment_method": method,
        "return_url": return_url,
    }
    headers = {"Idempotency-Key": f"demo-{uuid.uuid4()}"}
    payment = await _call(api, "POST", "/v1/deposits", deposit, headers)
    deadline = time.monotonic() + LEAVES_PROCESSING_SECONDS
    while payment["status"] == "processing" and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        payment = await _call(api, "GET", f"/v1/payments/{quote(payment['id'])}")
    return payment


async def _payment_state(api: httpx.AsyncClient, payment_id: str) -> dict[str, Any]:
    payment = await _call(api, "GET", f"/v1/payments/{quote(payment_id, safe='')}")
    balances = await _call(api, "GET", f"/v1/customers/{payment['customer_id']}/balances")
    available = next((b["available"] for b in balances["data"] if b["currency"] == CURRENCY), 0)
    action = payment.get("next_action") or {}
    return {
        "id": payment["id"],
        "status": payment["status"],
        "headline": HEADLINES.get(payment["status"], payment["status"]),
        "failure_code": payment["failure_code"],
        "amount": _major_units(payment["amount"]) + f" {payment['currency']}",
        "balance": f"{_major_units(available)} {CURRENCY}",
        "authentication_url": (action.get("redirect_to_url") or {}).get("url"),
        "terminal": payment["status"] in TERMINAL,
    }


async def _call(
    api: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    try:
        response = await api.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DemoError(f"the paysaga API did not answer ({exc.__class__.__name__})") from exc
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = str(problem.get("detail") or problem.get("title") or problem)
        except ValueError:
            detail = response.text[:200]
        raise DemoError(f"the paysaga API answered {response.status_code}: {detail}")
    answer: dict[str, Any] = response.json()
    return answer


def _minor_units(text: str) -> int | None:
    """'25' or '25.00' EUR as 2500 cents; None when not a usable amount."""
    try:
        major = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not major.is_finite() or major <= 0 or major > AMOUNT_MAJOR_MAX:
        return None
    minor = major * 100
    return int(minor) if minor == minor.to_integral_value() else None


def _major_units(minor: int) -> str:
    return f"{minor // 100:,}.{minor % 100:02d}"


def _form_page(error: str = "", amount: str = "25.00") -> str:
    choices = "".join(
        f'<label><input type="radio" name="payment_method" value="{token}"'
        f"{' checked' if token == 'pm_3ds_required' else ''}> {html.escape(label)}"
        f" <code>{token}</code></label><br>"
        for token, label in METHODS.items()
    )
    alert = f'<p id="error" class="error">{html.escape(error)}</p>' if error else ""
    body = (
        f"{alert}"
        '<form method="post" action="/checkout">'
        f'<p><label>Amount (EUR) <input id="amount" name="amount" value="{html.escape(amount)}"'
        ' inputmode="decimal" required></label></p>'
        f"<fieldset><legend>Pay with (sandbox test methods)</legend>{choices}</fieldset>"
        '<p><button id="pay" type="submit">Deposit</button></p></form>'
    )
    return _page("Deposit to your wallet", body)


def _status_page(state: dict[str, Any]) -> str:
    failure = state["failure_code"] or ""
    link = state["authentication_url"]
    body = (
        f'<p id="headline" class="headline">{html.escape(state["headline"])}</p>'
        "<table>"
        f"<tr><th>Deposit</th><td><code>{html.escape(state['id'])}</code></td></tr>"
        f"<tr><th>Amount</th><td>{html.escape(state['amount'])}</td></tr>"
        f'<tr><th>Status</th><td><strong id="status">{html.escape(state["status"])}</strong></td></tr>'
        f'<tr><th>Failure code</th><td id="failure-code">{html.escape(failure)}</td></tr>'
        f'<tr><th>Wallet balance</th><td id="balance">{html.escape(state["balance"])}</td></tr>'
        "</table>"
        f'<p id="continue"{"" if link else " hidden"}><a id="continue-link"'
        f' href="{html.escape(link or "")}">Continue to the authentication page</a></p>'
        '<p><a id="again" href="/">Make another deposit</a></p>'
        f"<script>{_POLL_SCRIPT % json.dumps(state['id'])}</script>"
    )
    return _page("Your deposit", body)


# Reads the deposit again every half second until it is terminal: the saga finishes on its own
# (the provider's webhook, or polling) after the customer is back.
_POLL_SCRIPT = """
const paymentId = %s;
async function refresh() {
  const answer = await fetch("/payments/" + encodeURIComponent(paymentId));
  if (answer.ok) {
    const state = await answer.json();
    document.getElementById("headline").textContent = state.headline;
    document.getElementById("status").textContent = state.status;
    document.getElementById("failure-code").textContent = state.failure_code || "";
    document.getElementById("balance").textContent = state.balance;
    document.getElementById("continue").hidden = !state.authentication_url;
    if (state.authentication_url) {
      document.getElementById("continue-link").href = state.authentication_url;
    }
    if (state.terminal) return;
  }
  setTimeout(refresh, 500);
}
setTimeout(refresh, 500);
"""

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "fieldset{margin:1rem 0}label{line-height:2}th{text-align:left;padding-right:1rem}"
    ".error{color:#a00}.headline{font-size:1.2rem}"
    ".note{color:#666;font-size:.85rem;border-top:1px solid #ddd;padding-top:.5rem}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} - paysaga demo checkout</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}"
        '<p class="note">paysaga demo checkout: a merchant page of the dev stack, calling the '
        "API with the development merchant's key from its server. Test methods only.</p>"
        "</body></html>"
    )


def main() -> None:
    """Serve the demo checkout until SIGTERM/SIGINT (uvicorn handles both)."""
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.demo_port)
    default_api = f"http://{settings.api_host}:{settings.api_port}"
    parser.add_argument("--api-url", default=default_api, help=f"default: {default_api}")
    args = parser.parse_args()
    if settings.environment != "development":
        parser.error("the demo checkout holds the public development key: a development tool only")
    app = create_app(args.api_url)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
