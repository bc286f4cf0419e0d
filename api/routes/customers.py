"""Customers and their wallet balances."""

from __future__ import annotations

import secrets

from fastapi import APIRouter

from api.deps import MerchantData, MerchantView, ServicesDep
from api.lists import METADATA_FILTER_OPENAPI, ListWindow, MetadataFilter
from api.schemas import Balance, BalanceList, Customer, CustomerCreate, CustomerList
from domain.errors import Conflict, NotFound
from ledger.models import AccountKind, CurrencyBalance

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
        body.metadata,
    )
    if row is None:
        raise Conflict(
            f"a customer with external_id {body.external_id!r} exists", code="customer_exists"
        )
    return Customer.model_validate(row, from_attributes=True)


@router.get("", response_model=CustomerList, openapi_extra=METADATA_FILTER_OPENAPI)
async def list_customers(
    books: MerchantView, window: ListWindow, metadata: MetadataFilter
) -> CustomerList:
    """Customers, newest first; pass the last id as `starting_after` for the next page (or the
    first as `ending_before` for the previous one); `metadata[key]=value` filters."""
    if window.cursor and await books.get_customer(window.cursor) is None:
        raise NotFound(f"no customer {window.cursor} to page from", code="cursor_not_found")
    rows, has_more = await books.list_customers(window, metadata)
    return CustomerList(
        data=[Customer.model_validate(row, from_attributes=True) for row in rows],
        has_more=has_more,
    )


@router.get("/{customer_id}", response_model=Customer)
async def get_customer(customer_id: str, books: MerchantView) -> Customer:
    """One customer."""
    row = await books.get_customer(customer_id)
    if row is None:
        raise NotFound(f"no customer {customer_id}")
    return Customer.model_validate(row, from_attributes=True)


@router.get("/{customer_id}/balances", response_model=BalanceList)
async def get_balances(customer_id: str, svc: ServicesDep, books: MerchantView) -> BalanceList:
    """The customer's wallet balances, one per currency: posted, held and available, and what
    the customer owes (`receivable`)."""
    if await books.get_customer(customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    wallets = {b.currency: b for b in await svc.ledger.balances(books.merchant_id, customer_id)}
    # A debt is booked below zero on the receivable account; shown as what is owed.
    debts = {
        b.currency: -b.posted
        for b in await svc.ledger.balances(
            books.merchant_id, customer_id, AccountKind.customer_receivable
        )
    }
    empty = CurrencyBalance("", 0, 0, 0)
    return BalanceList(
        data=[
            Balance(
                currency=currency,
                posted=wallets.get(currency, empty).posted,
                held=wallets.get(currency, empty).held,
                available=wallets.get(currency, empty).available,
                receivable=debts.get(currency, 0),
            )
            for currency in sorted(wallets.keys() | debts.keys())
        ]
    )
