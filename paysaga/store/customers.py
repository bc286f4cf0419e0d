"""Customers: who pays, and the KYC result the risk activity records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from paysaga.personal_data import PersonalDataCipher, sealed_at
from paysaga.store.pages import Window, page_query
from paysaga.store.sql import Params, TableRow, Tables


@dataclass(frozen=True)
class CustomerRow(TableRow):
    """A row of `customers`, its personal data opened (the table holds it sealed)."""

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
    self_excluded_until: datetime | None  # no deposit, bet or bonus until then
    metadata: dict[str, str] = field(default_factory=dict)  # the merchant's own pairs


CustomerT = TypeVar("CustomerT", bound=CustomerRow)


def sealed_customer(
    cipher: PersonalDataCipher,
    merchant_id: str,
    customer_id: str,
    full_name: str,
    birth_date: date,
) -> tuple[str, str]:
    """The values of `full_name_sealed` and `birth_date_sealed` for a customer's row."""
    return (
        cipher.seal(
            full_name, sealed_at("customers", "full_name_sealed", merchant_id, customer_id)
        ),
        cipher.seal(
            birth_date.isoformat(),
            sealed_at("customers", "birth_date_sealed", merchant_id, customer_id),
        ),
    )


class Customers(Tables):
    """Reads and writes of `customers`; the name and birth date are sealed on their way in and
    opened on their way out, bound to their row (`paysaga.personal_data`)."""

    async def create_customer(
        self,
        merchant_id: str,
        customer_id: str,
        external_id: str,
        full_name: str,
        birth_date: date,
        country: str,
        metadata: dict[str, str] | None = None,
    ) -> CustomerRow | None:
        """Insert a customer; None when the merchant already has one with this external id."""
        name, birth = sealed_customer(
            self.personal_data, merchant_id, customer_id, full_name, birth_date
        )
        return await self._one_customer(
            CustomerRow,
            "INSERT INTO customers (id, merchant_id, external_id, full_name_sealed,"
            " birth_date_sealed, country, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (merchant_id, external_id) DO NOTHING RETURNING *",
            (
                customer_id,
                merchant_id,
                external_id,
                name,
                birth,
                country,
                json.dumps(metadata or {}),
            ),
        )

    async def get_customer(
        self, customer_id: str, merchant_id: str | None = None
    ) -> CustomerRow | None:
        """A customer by id: the merchant's, or (for the worker) whoever's it is."""
        return await self._one_customer(
            CustomerRow,
            "SELECT * FROM customers WHERE id = %s AND merchant_id = COALESCE(%s::text, merchant_id)",
            (customer_id, merchant_id),
        )

    async def list_customers(
        self, merchant_id: str, window: Window[str], metadata: dict[str, str] | None = None
    ) -> tuple[list[CustomerRow], bool]:
        """The merchant's customers, newest first; `metadata`: only those whose metadata hold
        all these pairs."""
        page = page_query("customers", window, newest_first=True)
        where = ["merchant_id = %(merchant_id)s", *page.conditions]
        if metadata:
            where.append("metadata @> %(metadata)s::jsonb")
        rows = await self._fetch_all(
            f"SELECT * FROM customers WHERE {' AND '.join(where)}"
            f" ORDER BY {page.order_by} LIMIT %(limit)s",
            {**page.params, "merchant_id": merchant_id, "metadata": json.dumps(metadata or {})},
        )
        return page.rows([self.open_customer(CustomerRow, row) for row in rows], window.limit)

    async def record_kyc(self, customer_id: str, status: str, reason: str | None) -> None:
        await self._execute(
            "UPDATE customers SET kyc_status = %s, kyc_reason = %s, updated_at = now()"
            " WHERE id = %s RETURNING id",
            (status, reason, customer_id),
        )

    async def _one_customer(
        self, row_type: type[CustomerT], sql: str, params: Params
    ) -> CustomerT | None:
        """The customer a statement returns, its personal data opened."""
        row = await self._fetch_one(sql, params)
        return None if row is None else self.open_customer(row_type, row)

    def open_customer(self, row_type: type[CustomerT], row: Mapping[str, Any]) -> CustomerT:
        """A `customers` row as read, its sealed columns opened (PersonalDataUnreadable if not)."""
        merchant_id, customer_id = row["merchant_id"], row["id"]
        where = sealed_at("customers", "birth_date_sealed", merchant_id, customer_id)
        return row_type.from_row(
            {
                **row,
                "full_name": self.personal_data.open(
                    row["full_name_sealed"],
                    sealed_at("customers", "full_name_sealed", merchant_id, customer_id),
                ),
                "birth_date": date.fromisoformat(
                    self.personal_data.open(row["birth_date_sealed"], where)
                ),
            }
        )
