"""The one hierarchy of FX errors, each with a stable `code` for problem+json answers."""

from __future__ import annotations

from typing import ClassVar


class FxError(ValueError):
    """Base of every error of the FX quoting rules."""

    code: ClassVar[str] = "fx_error"


class UnsupportedCurrencyPair(FxError):
    """A currency is not supported, the rate source has no rate for it, or both sides are equal."""

    code: ClassVar[str] = "unsupported_currency_pair"


class InvalidAmount(FxError):
    """The source amount is not a positive integer of minor units."""

    code: ClassVar[str] = "invalid_amount"


class QuoteTooSmall(FxError):
    """After the fee, nothing (or less than one target minor unit) would reach the beneficiary."""

    code: ClassVar[str] = "quote_too_small"


class InvalidPricing(FxError):
    """The mid rate, spread or fee given to the pricing is unusable (a configuration error)."""

    code: ClassVar[str] = "invalid_pricing"
