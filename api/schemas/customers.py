"""Customers: who pays, their balances, and what operators do to them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.codes import KycStatus
from api.schemas.common import Metadata, StrictBody


class CustomerCreate(StrictBody):
    external_id: str = Field(min_length=1, max_length=255)
    full_name: str = Field(min_length=1, max_length=200)
    birth_date: date = Field(description="YYYY-MM-DD")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2", examples=["DE"])
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("birth_date", mode="before")
    @classmethod
    def iso_date_only(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("birth_date must be a YYYY-MM-DD string")
        return value


class Customer(BaseModel):
    # Every field is in every answer: the document says so (a client need not test for it).
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: str
    external_id: str
    full_name: str
    birth_date: date
    country: str
    kyc_status: KycStatus
    status: Literal["active", "blocked"] = "active"  # a blocked customer places no bets
    self_excluded_until: datetime | None = Field(
        default=None,
        description="the end of the customer's self-exclusion (9999-12-31: permanent); until"
        " then no deposit, bet or bonus",
    )
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime


class CustomerList(BaseModel):
    data: list[Customer]
    has_more: bool


class Balance(BaseModel):
    currency: str
    posted: int
    held: int
    available: int
    receivable: int = Field(
        default=0,
        description="what the customer owes the merchant (a chargeback the wallet could not"
        " cover); while above 0 withdrawals fail `customer_in_debt` and deposits repay it first",
    )


class BalanceList(BaseModel):
    data: list[Balance]


class OpsReason(StrictBody):
    """Why an operator acts (kept in the ops audit trail)."""

    reason: str = Field(min_length=1, max_length=500)


class CustomerWithStatus(Customer):
    """A customer and its wallet status: `blocked` customers place no bets."""

    status: Literal["active", "blocked"]
