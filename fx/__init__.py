"""FX quoting: reference mid rates and the pricing of a quote (rate, fee, target amount)."""

from fx.errors import (
    FxError,
    InvalidPricing,
    InvalidSourceAmount,
    QuoteTooSmall,
    UnsupportedCurrencyPair,
)
from fx.quotes import RATE_DECIMAL_PLACES, QuotePrice, customer_rate, format_rate, price_quote
from fx.rates import REFERENCE_RATES_PER_EUR, RateSource, SandboxRates

__all__ = [
    "RATE_DECIMAL_PLACES",
    "REFERENCE_RATES_PER_EUR",
    "FxError",
    "InvalidPricing",
    "InvalidSourceAmount",
    "QuotePrice",
    "QuoteTooSmall",
    "RateSource",
    "SandboxRates",
    "UnsupportedCurrencyPair",
    "customer_rate",
    "format_rate",
    "price_quote",
]
