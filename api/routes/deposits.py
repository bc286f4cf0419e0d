"""Deposits: money in from a payment provider to a customer's wallet."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import IdempotencyKey, MerchantData, ServicesDep
from api.idempotency import derived_id, request_fingerprint, run_once
from api.routes.providers import candidates_for
from api.routing import route_deposit
from api.sagas import saga_timings, start_payment
from api.schemas import DepositCreate, Payment
from domain.errors import InvalidRequest, NotFound
from domain.payments import DepositInput, PaymentKind
from paysaga.store.responsible import REFUSAL_DETAILS, reserve_deposit
from providers.accounts import CHARGE
from providers.success_rate import Candidate

router = APIRouter(prefix="/v1/deposits", tags=["deposits"])


@router.post("", status_code=202, response_model=Payment)
async def create_deposit(
    body: DepositCreate,
    request: Request,
    svc: ServicesDep,
    books: MerchantData,
    idempotency_key: IdempotencyKey,
) -> Response:
    """Start a deposit saga; the answer is the payment in `processing`."""
    production = svc.settings.environment == "production"
    if body.return_url and production and not body.return_url.startswith("https://"):
        raise InvalidRequest("return_url must be https", code="return_url_not_allowed")
    fingerprint = request_fingerprint(request.url.path, body)

    async def start() -> Payment:
        eligible = await candidates_for(
            svc, books, CHARGE, body.currency, payment_method=body.payment_method
        )
        routing = [account.id for account in eligible]
        if body.provider is not None:
            # The merchant named an account (by id or name): that one only.
            named = [a.id for a in eligible if body.provider in (a.id, a.name)]
            if not named:
                # An unknown customer is told first, as always; else the INSERT checks it.
                if await books.get_customer(body.customer_id) is None:
                    raise NotFound(f"no customer {body.customer_id}", code="customer_not_found")
                raise InvalidRequest(
                    f"no provider account {body.provider!r} takes this deposit; eligible:"
                    f" {[a.name for a in eligible]}"
                )
            routing = named
        payment_id = derived_id("dep_", books.merchant_id, idempotency_key, fingerprint)
        # Self-exclusion and deposit limits, before any charge (the amount is reserved).
        refusal = await reserve_deposit(
            svc.pool, books.merchant_id, body.customer_id, body.currency, body.amount, payment_id
        )
        if refusal is not None:
            raise InvalidRequest(REFUSAL_DETAILS[refusal], code=refusal)
        candidates = [Candidate(a.id, a.priority) for a in eligible if a.id in routing]
        requested = routing[0] if body.provider is not None else None
        decision = await route_deposit(
            svc, books, payment_id, candidates, body.currency, body.payment_method, requested
        )
        deposit = DepositInput(
            payment_id=payment_id,
            customer_id=body.customer_id,
            amount=body.amount,
            currency=body.currency,
            payment_method=body.payment_method,
            providers=decision.account_ids,
            timings=saga_timings(svc.settings),
            merchant_id=books.merchant_id,
            return_url=body.return_url or "",
        )
        return await start_payment(
            svc,
            books,
            kind=PaymentKind.DEPOSIT,
            payment_id=payment_id,
            customer_id=body.customer_id,
            amount=body.amount,
            currency=body.currency,
            provider=requested,
            details={"payment_method": body.payment_method},
            workflow_input=deposit,
            routing=decision.record(),
            metadata=body.metadata,
        )

    return await run_once(
        books, svc.settings.idempotency_key_ttl_hours, idempotency_key, fingerprint, 202, start
    )
