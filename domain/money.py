"""Money rules: integer minor units and the ISO 4217 exponent of each supported currency."""

from __future__ import annotations

CURRENCY_EXPONENTS: dict[str, int] = {
    "EUR": 2,
    "USD": 2,
    "GBP": 2,
    "CHF": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "CAD": 2,
    "AUD": 2,
    "BRL": 2,
    "MXN": 2,
    "INR": 2,
    "TRY": 2,
    "ZAR": 2,
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "KWD": 3,
    "BHD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}


class UnsupportedCurrency(ValueError):
    """The currency is not an uppercase ISO 4217 code that paysaga supports."""


def exponent(currency: str) -> int:
    """The number of decimal places of `currency` (JPY 0, EUR 2, KWD 3)."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnsupportedCurrency(f"unsupported currency {currency!r}") from None


def major_to_minor(major_units: int, currency: str) -> int:
    """Whole major units (e.g. 5,000 EUR) as minor units (500,000 cents)."""
    return major_units * int(10 ** exponent(currency))
