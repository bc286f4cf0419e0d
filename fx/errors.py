"""The FX branch of the error tree (see domain.errors), each with a stable `code`."""

from __future__ import annotations

from domain.errors import PaysagaError


class FxError(PaysagaError, ValueError):
    """Base of every error of the FX quoting rules."""

    code = "fx_error"


class UnsupportedCurrencyPair(FxError):
    """A currency is not supported, the rate source has no rate for it, or both sides are equal."""

    code = "unsupported_currency_pair"


class InvalidSourceAmount(FxError):
    """The source amount is not a positive integer of minor units."""

    code = "invalid_amount"


class QuoteTooSmall(FxError):
    """After the fee, nothing (or less than one target minor unit) would reach the beneficiary."""

    code = "quote_too_small"


class InvalidPricing(FxError):
    """The mid rate, spread or fee given to the pricing is unusable (a configuration error)."""

    code = "invalid_pricing"
