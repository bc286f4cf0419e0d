"""A merchant's program written against a client generated from paysaga's OpenAPI document
(`openapi-python-client`): tests/api/test_generated_client.py generates the client, type-checks
this file against it (mypy --strict) and runs it against the test stack.

It creates a customer with metadata, takes a deposit tagged with the merchant's order id, reads it
until it succeeds, and finds it again by that order id.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import date

from paysaga_api_client import AuthenticatedClient
from paysaga_api_client.api.customers import create_customer, get_customer, list_customers
from paysaga_api_client.api.deposits import create_deposit
from paysaga_api_client.api.payments import get_payment, list_payments
from paysaga_api_client.models import (
    Customer,
    CustomerCreate,
    CustomerCreateMetadata,
    CustomerList,
    DepositCreate,
    DepositCreateCurrency,
    DepositCreateMetadata,
    ListCustomersMetadata,
    ListPaymentsMetadata,
    Payment,
    PaymentKind,
    PaymentList,
    PaymentStatus,
    Problem,
)

TERMINAL = {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED}


def new_customer(client: AuthenticatedClient, crm_id: str) -> Customer:
    customer = create_customer.sync(
        client=client,
        body=CustomerCreate(
            external_id=f"ext-{uuid.uuid4()}",
            full_name="Ada Lovelace",
            birth_date=date(1990, 12, 10),
            country="DE",
            metadata=CustomerCreateMetadata.from_dict({"crm_id": crm_id}),
        ),
    )
    assert isinstance(customer, Customer), customer
    return customer


def new_deposit(client: AuthenticatedClient, customer_id: str, order_id: str) -> Payment:
    created = create_deposit.sync(
        client=client,
        idempotency_key=str(uuid.uuid4()),
        body=DepositCreate(
            customer_id=customer_id,
            amount=2500,
            currency=DepositCreateCurrency.EUR,
            payment_method="pm_ok",
            metadata=DepositCreateMetadata.from_dict({"order_id": order_id}),
        ),
    )
    assert isinstance(created, Payment), created
    return created


def take_a_deposit(client: AuthenticatedClient) -> dict[str, object]:
    """The program's whole story; what it saw, for the test to read."""
    order_id = f"order-{uuid.uuid4().hex[:12]}"
    crm_id = f"crm-{uuid.uuid4().hex[:12]}"
    customer = new_customer(client, crm_id)
    new_customer(client, f"crm-{uuid.uuid4().hex[:12]}")  # one the filter leaves out
    again = get_customer.sync(customer.id, client=client)
    assert isinstance(again, Customer), again
    assert again.metadata["crm_id"] == crm_id

    created = new_deposit(client, customer.id, order_id)
    assert created.kind == PaymentKind.DEPOSIT
    new_deposit(client, customer.id, f"order-{uuid.uuid4().hex[:12]}")  # left out by the filter

    payment: Payment | Problem | None = created
    deadline = time.monotonic() + 60
    while isinstance(payment, Payment) and payment.status not in TERMINAL:
        assert time.monotonic() < deadline, f"{created.id} still {payment.status}"
        time.sleep(0.1)
        payment = get_payment.sync(created.id, client=client)
    assert isinstance(payment, Payment), payment

    by_order = list_payments.sync(
        client=client, metadata=ListPaymentsMetadata.from_dict({"order_id": order_id})
    )
    assert isinstance(by_order, PaymentList), by_order
    by_crm_id = list_customers.sync(
        client=client, metadata=ListCustomersMetadata.from_dict({"crm_id": crm_id})
    )
    assert isinstance(by_crm_id, CustomerList), by_crm_id
    return {
        "payment_id": payment.id,
        "status": payment.status.value,
        "failure_code": None if payment.failure_code is None else payment.failure_code.value,
        "order_id": payment.metadata["order_id"],
        "listed_by_order_id": [listed.id for listed in by_order.data],
        "customer_id": customer.id,
        "customers_listed_by_crm_id": [listed.id for listed in by_crm_id.data],
    }


def main() -> None:
    client = AuthenticatedClient(
        base_url=os.environ["PAYSAGA_API_URL"],
        token=os.environ["PAYSAGA_API_KEY"],
        raise_on_unexpected_status=True,
    )
    with client:
        print(json.dumps(take_a_deposit(client)))


if __name__ == "__main__":
    main()
