"""Customers and their wallet balances."""

from __future__ import annotations

import secrets

from fastapi import APIRouter

from api.deps import CurrentKey, ServicesDep
from api.schemas import Balance, BalanceList, Customer, CustomerCreate
from domain.errors import Conflict, NotFound

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.post("", status_code=201, response_model=Customer)
async def create_customer(body: CustomerCreate, svc: ServicesDep, _key: CurrentKey) -> Customer:
    """Create a customer; KYC runs with the customer's first payment."""
    row = await svc.store.create_customer(
        f"cus_{secrets.token_hex(12)}",
        body.external_id,
        body.full_name,
        body.birth_date,
        body.country,
    )
    if row is None:
        raise Conflict(
            f"a customer with external_id {body.external_id!r} exists", code="customer_exists"
        )
    return Customer.model_validate(row, from_attributes=True)


@router.get("/{customer_id}", response_model=Customer)
async def get_customer(customer_id: str, svc: ServicesDep, _key: CurrentKey) -> Customer:
    """One customer."""
    row = await svc.store.get_customer(customer_id)
    if row is None:
        raise NotFound(f"no customer {customer_id}")
    return Customer.model_validate(row, from_attributes=True)


@router.get("/{customer_id}/balances", response_model=BalanceList)
async def get_balances(customer_id: str, svc: ServicesDep, _key: CurrentKey) -> BalanceList:
    """The customer's wallet balances, one per currency: posted, held and available."""
    if await svc.store.get_customer(customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    wallets = await svc.ledger.balances(customer_id)
    return BalanceList(
        data=[
            Balance(currency=b.currency, posted=b.posted, held=b.held, available=b.available)
            for b in wallets
        ]
    )
