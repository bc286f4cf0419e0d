"""The custom Temporal search attributes by which operators find payments in the Temporal UI."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

MERCHANT_ID = SearchAttributeKey.for_keyword("MerchantId")
PAYMENT_KIND = SearchAttributeKey.for_keyword("PaymentKind")
PAYMENT_STATUS = SearchAttributeKey.for_keyword("PaymentStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
CURRENCY = SearchAttributeKey.for_keyword("Currency")
AMOUNT_MINOR = SearchAttributeKey.for_int("AmountMinor")
PROVIDER = SearchAttributeKey.for_keyword("Provider")
RISK_DECISION = SearchAttributeKey.for_keyword("RiskDecision")
DISPUTE_STATUS = SearchAttributeKey.for_keyword("DisputeStatus")

ALL: tuple[SearchAttributeKey[Any], ...] = (
    MERCHANT_ID,
    PAYMENT_KIND,
    PAYMENT_STATUS,
    CUSTOMER_ID,
    CURRENCY,
    AMOUNT_MINOR,
    PROVIDER,
    RISK_DECISION,
    DISPUTE_STATUS,
)


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags registering every attribute on `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        kind = "Int" if key.indexed_value_type.name == "INT" else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
