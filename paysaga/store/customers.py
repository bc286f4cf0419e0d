"""Customers: who pays, and the KYC result the risk activity records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class CustomerRow(TableRow):
    """A row of `customers`."""

    id: str
    merchant_id: str
    external_id: str
    full_name: str
    birth_date: date
    country: str
    kyc_status: str
    kyc_reason: str | None
    status: str  # active, or blocked (no bets)
    created_at: datetime
    updated_at: datetime


class Customers(Tables):
    """Reads and writes of `customers`."""

    async def create_customer(
        self,
        merchant_id: str,
        customer_id: str,
        external_id: str,
        full_name: str,
        birth_date: date,
        country: str,
    ) -> CustomerRow | None:
        """Insert a customer; None when the merchant already has one with this external id."""
        return await self._one(
            CustomerRow,
            "INSERT INTO customers (id, merchant_id, external_id, full_name, birth_date, country)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (merchant_id, external_id) DO NOTHING RETURNING *",
            (customer_id, merchant_id, external_id, full_name, birth_date, country),
        )

    async def get_customer(self, customer_id: str) -> CustomerRow | None:
        """A customer by id, whoever's it is (for the worker; the API reads through
        `MerchantStore`)."""
        return await self._one(CustomerRow, "SELECT * FROM customers WHERE id = %s", (customer_id,))

    async def record_kyc(self, customer_id: str, status: str, reason: str | None) -> None:
        await self._execute(
            "UPDATE customers SET kyc_status = %s, kyc_reason = %s, updated_at = now()"
            " WHERE id = %s RETURNING id",
            (status, reason, customer_id),
        )
