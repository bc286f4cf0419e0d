"""Customers and their wallet balances."""

from __future__ import annotations

import secrets

from fastapi import APIRouter

from api.deps import MerchantData, ServicesDep
from api.schemas import Balance, BalanceList, Customer, CustomerCreate
from domain.errors import Conflict, NotFound

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.post("", status_code=201, response_model=Customer)
async def create_customer(body: CustomerCreate, books: MerchantData) -> Customer:
    """Create a customer; KYC runs with the customer's first payment."""
    row = await books.create_customer(
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
async def get_customer(customer_id: str, books: MerchantData) -> Customer:
    """One customer."""
    row = await books.get_customer(customer_id)
    if row is None:
        raise NotFound(f"no customer {customer_id}")
    return Customer.model_validate(row, from_attributes=True)


@router.get("/{customer_id}/balances", response_model=BalanceList)
async def get_balances(customer_id: str, svc: ServicesDep, books: MerchantData) -> BalanceList:
    """The customer's wallet balances, one per currency: posted, held and available."""
    if await books.get_customer(customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    wallets = await svc.ledger.balances(books.merchant_id, customer_id)
    return BalanceList(
        data=[
            Balance(currency=b.currency, posted=b.posted, held=b.held, available=b.available)
            for b in wallets
        ]
    )
