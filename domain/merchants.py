"""Merchants: the tenant of every customer, payment, ledger account, event and key."""

from __future__ import annotations

from enum import StrEnum

# Every object made before merchants existed became this merchant's (migration 0008); so are
# the saga inputs recorded before then, which carry no merchant of their own.
DEV_MERCHANT_ID = "mer_dev"
DEV_MERCHANT_2_ID = "mer_dev_2"


class Scope(StrEnum):
    """What an API key may do: move money and read (`payments`), act as the merchant's operator
    (`ops`), or, on a platform key that belongs to no merchant, create merchants and their keys
    (`platform`) and decrypt Temporal payloads of every merchant through the codec (`codec`)."""

    PAYMENTS = "payments"
    OPS = "ops"
    PLATFORM = "platform"
    CODEC = "codec"
