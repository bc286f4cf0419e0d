"""What every resource's bodies share: strict bodies, money fields, URLs, metadata, lists."""

from __future__ import annotations

from typing import Annotated

import httpx
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
)

from domain.money import CURRENCY_EXPONENTS

# The schema states what the validators below enforce: a currency paysaga supports, a provider
# it knows (any other answers 422, which a client should be able to tell from the schema).
Currency = Field(
    pattern=r"^[A-Z]{3}$",
    description="uppercase ISO 4217 code of a supported currency",
    examples=["EUR"],
    json_schema_extra={"enum": list[JsonValue](sorted(CURRENCY_EXPONENTS))},
)
MinorUnits = Field(gt=0, le=10**15, strict=True, description="integer amount in minor units")


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


# An http(s) URL every client parses as written: an IPv4 address or a DNS name whose last label
# starts with a letter (no credentials, no IPv6 literal), a port that exists, then printable ASCII
# (percent-encode the rest).
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_HOST = rf"(?:(?:{_OCTET}\.){{3}}{_OCTET}|(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*\.?)"
HTTP_URL_PATTERN = rf"^https?://{_HOST}(?::{_PORT})?(?:[/?#][\x21-\x7e]*)?$"
_HTTP_URL = TypeAdapter(AnyHttpUrl)


def _usable_url(url: str | None, name: str) -> str | None:
    """The pattern (kept for the OpenAPI document) and a real URL parser, both pydantic's and
    httpx's, must take it; it is kept as the merchant wrote it."""
    if url is not None:
        try:
            _HTTP_URL.validate_python(url)
            httpx.URL(url)
        except (ValidationError, httpx.InvalidURL) as exc:
            raise ValueError(f"{name} is not a URL an HTTP client can use") from exc
    return url


def _supported(currency: str) -> str:
    if currency not in CURRENCY_EXPONENTS:
        raise ValueError(f"currency {currency} is not supported")
    return currency


def _supported_or_none(currency: str | None) -> str | None:
    return None if currency is None else _supported(currency)


# ---------------------------------------------------------------------- metadata

# Stripe's limits: the merchant's own key-value pairs (an order id, a cart), never read by paysaga.
METADATA_KEYS_MAX = 50
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500
METADATA_DESCRIPTION = (
    "the merchant's own key-value pairs (e.g. its order id), returned as sent and filterable on"
    f" lists (`metadata[key]=value`): at most {METADATA_KEYS_MAX} keys, keys of 1 to"
    f" {METADATA_KEY_LENGTH_MAX} characters without `[` or `]`, string values of at most"
    f" {METADATA_VALUE_LENGTH_MAX} characters"
)
METADATA_KEY_PATTERN = r"^[^\[\]\u0000]+$"


def _no_brackets(key: str) -> str:
    if "[" in key or "]" in key:
        raise ValueError("a metadata key has no `[` or `]` (they delimit it in list filters)")
    return key


MetadataKey = Annotated[
    str,
    Field(min_length=1, max_length=METADATA_KEY_LENGTH_MAX),
    AfterValidator(_no_brackets),
]
MetadataValue = Annotated[str, Field(max_length=METADATA_VALUE_LENGTH_MAX)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(
        max_length=METADATA_KEYS_MAX,
        description=METADATA_DESCRIPTION,
        json_schema_extra={
            "propertyNames": {
                "minLength": 1,
                "maxLength": METADATA_KEY_LENGTH_MAX,
                "pattern": METADATA_KEY_PATTERN,
            }
        },
    ),
]
