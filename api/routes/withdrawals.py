"""Withdrawals: money out of a customer's wallet through a payment provider."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import IdempotencyKey, MerchantData, ServicesDep
from api.idempotency import derived_id, request_fingerprint, run_once
from api.routes.providers import candidates_for
from api.sagas import saga_timings, start_payment
from api.schemas import Payment, WithdrawalCreate
from domain.payments import PaymentKind, WithdrawalInput
from providers.accounts import PAYOUT
from wallet.models import ForfeitActiveBonus

router = APIRouter(prefix="/v1/withdrawals", tags=["withdrawals"])


@router.post("", status_code=202, response_model=Payment)
async def create_withdrawal(
    body: WithdrawalCreate,
    request: Request,
    svc: ServicesDep,
    books: MerchantData,
    idempotency_key: IdempotencyKey,
) -> Response:
    """Start a withdrawal saga; the answer is the payment in `processing`."""
    fingerprint = request_fingerprint(request.url.path, body)

    async def start() -> Payment:
        # A withdrawal request forfeits the active bonus in its currency (bonus money is never
        # withdrawn, and what it won stays bonus): done once, with the request's first answer.
        await svc.wallet.submit(
            ForfeitActiveBonus(books.merchant_id, body.customer_id, body.currency)
        )
        payment_id = derived_id("wd_", books.merchant_id, idempotency_key, fingerprint)
        withdrawal = WithdrawalInput(
            payment_id=payment_id,
            customer_id=body.customer_id,
            amount=body.amount,
            currency=body.currency,
            destination=body.destination,
            providers=[a.id for a in await candidates_for(svc, books, PAYOUT, body.currency)],
            timings=saga_timings(svc.settings),
            review_deadline_seconds=svc.settings.review_deadline_seconds,
            merchant_id=books.merchant_id,
        )
        return await start_payment(
            svc,
            books,
            kind=PaymentKind.WITHDRAWAL,
            payment_id=payment_id,
            customer_id=body.customer_id,
            amount=body.amount,
            currency=body.currency,
            provider=None,
            details={"destination": body.destination},
            workflow_input=withdrawal,
            metadata=body.metadata,
        )

    return await run_once(
        books, svc.settings.idempotency_key_ttl_hours, idempotency_key, fingerprint, 202, start
    )
