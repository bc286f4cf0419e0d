"""Cross-border transfers: convert at a quoted rate and credit a customer or pay out abroad."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import IdempotencyKey, MerchantData, ServicesDep
from api.idempotency import derived_id, request_fingerprint, run_once
from api.routes.providers import candidates_for
from api.sagas import saga_timings, start_payment
from api.schemas import ExternalBeneficiary, Payment, TransferCreate
from domain.errors import Conflict, InvalidRequest, NotFound
from domain.payments import Beneficiary, PaymentKind, TransferInput
from paysaga.store import MerchantStore
from providers.accounts import PAYOUT

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])


@router.post("", status_code=202, response_model=Payment)
async def create_transfer(
    body: TransferCreate,
    request: Request,
    svc: ServicesDep,
    books: MerchantData,
    idempotency_key: IdempotencyKey,
) -> Response:
    """Start a transfer saga on a quote; a quote is used by one transfer at most."""
    fingerprint = request_fingerprint(request.url.path, body)

    async def start() -> Payment:
        quote = await books.get_quote(body.quote_id)
        if quote is None or quote.customer_id != body.customer_id:
            raise NotFound(f"no quote {body.quote_id} for this customer", code="quote_not_found")
        beneficiary = await _beneficiary(books, body)
        payment_id = derived_id("tr_", books.merchant_id, idempotency_key, fingerprint)
        if not await books.use_quote(body.quote_id, payment_id):
            raise Conflict(f"quote {body.quote_id} was already used", code="quote_already_used")
        transfer = TransferInput(
            payment_id=payment_id,
            customer_id=body.customer_id,
            quote_id=quote.id,
            source_currency=quote.source_currency,
            target_currency=quote.target_currency,
            source_amount=quote.source_amount,
            fee=quote.fee,
            target_amount=quote.target_amount,
            rate=quote.rate,
            expires_at=quote.expires_at.isoformat(),
            beneficiary=beneficiary,
            house_owner_id=svc.settings.house_owner_id,
            providers=[
                a.id for a in await candidates_for(svc, books, PAYOUT, quote.target_currency)
            ],
            timings=saga_timings(svc.settings),
            review_deadline_seconds=svc.settings.review_deadline_seconds,
            merchant_id=books.merchant_id,
        )
        return await start_payment(
            svc,
            books,
            kind=PaymentKind.TRANSFER,
            payment_id=payment_id,
            customer_id=body.customer_id,
            amount=quote.source_amount,
            currency=quote.source_currency,
            provider=None,
            details={
                "quote_id": quote.id,
                "target_amount": quote.target_amount,
                "target_currency": quote.target_currency,
                "beneficiary_customer_id": beneficiary.customer_id,
            },
            workflow_input=transfer,
            metadata=body.metadata,
        )

    return await run_once(
        books, svc.settings.idempotency_key_ttl_hours, idempotency_key, fingerprint, 202, start
    )


async def _beneficiary(books: MerchantStore, body: TransferCreate) -> Beneficiary:
    if isinstance(body.beneficiary, ExternalBeneficiary):
        b = body.beneficiary
        return Beneficiary(name=b.name, country=b.country, account=b.account)
    customer = await books.get_customer(body.beneficiary.customer_id)
    if customer is None:
        raise NotFound(f"no customer {body.beneficiary.customer_id}", code="customer_not_found")
    if customer.id == body.customer_id:
        raise InvalidRequest("a transfer to oneself is a conversion; not supported")
    return Beneficiary(name=customer.full_name, country=customer.country, customer_id=customer.id)
