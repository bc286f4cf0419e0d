"""FX quotes: a locked rate, fee and target amount for one customer, valid until it expires."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter

from api.deps import MerchantData, MerchantView, ServicesDep
from api.schemas import Quote, QuoteCreate
from domain.errors import NotFound
from fx import SandboxRates, format_rate, price_quote
from paysaga.store import QuoteRow

router = APIRouter(prefix="/v1/fx", tags=["fx"])
RATES = SandboxRates()


@router.post("/quotes", status_code=201, response_model=Quote)
async def create_quote(body: QuoteCreate, svc: ServicesDep, books: MerchantData) -> Quote:
    """Lock a rate for the customer; the target amount is rounded down, the fee up."""
    if await books.get_customer(body.customer_id) is None:
        raise NotFound(f"no customer {body.customer_id}", code="customer_not_found")
    # An FxError (unsupported pair, amount too small...) is answered by api.problems.
    price = price_quote(
        body.source_currency,
        body.target_currency,
        body.source_amount,
        RATES.mid_rate(body.source_currency, body.target_currency),
        svc.settings.fx_spread_bps,
        svc.settings.fx_fee_bps,
    )
    ttl = min(
        body.expires_in_seconds or svc.settings.quote_ttl_seconds, svc.settings.quote_ttl_seconds
    )
    row = await books.insert_quote(
        {
            "id": f"quo_{secrets.token_hex(12)}",
            "customer_id": body.customer_id,
            "source_currency": price.source_currency,
            "target_currency": price.target_currency,
            "source_amount": price.source_amount,
            "fee": price.fee,
            "target_amount": price.target_amount,
            "rate": format_rate(price.rate),
            "mid_rate": format_rate(price.mid_rate),
            "expires_at": datetime.now(UTC) + timedelta(seconds=ttl),
        }
    )
    return quote_from_row(row)


@router.get("/quotes/{quote_id}", response_model=Quote)
async def get_quote(quote_id: str, books: MerchantView) -> Quote:
    """One quote: its locked price, expiry, and whether a transfer used it."""
    row = await books.get_quote(quote_id)
    if row is None:
        raise NotFound(f"no quote {quote_id}")
    return quote_from_row(row)


def quote_from_row(row: QuoteRow) -> Quote:
    return Quote.model_validate({**asdict(row), "used": row.used_by_payment_id is not None})
