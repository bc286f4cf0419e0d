"""Mid-market FX rates: the `RateSource` interface and the sandbox's shipped reference table."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, localcontext
from types import MappingProxyType
from typing import Protocol

from domain.money import CURRENCY_EXPONENTS
from fx.errors import UnsupportedCurrencyPair

PIVOT_CURRENCY = "EUR"

# Cross rates are divisions of two table entries; 34 significant digits (IEEE decimal128) is far
# beyond the 10 decimal places a quote keeps, so the division's rounding never shows in a price.
RATE_PRECISION = 34

# Units of each currency for one euro: plausible 2026 reference values for the sandbox, not
# market data. Every currency paysaga supports (domain.money.CURRENCY_EXPONENTS) is listed.
REFERENCE_RATES_PER_EUR: Mapping[str, Decimal] = MappingProxyType(
    {
        "EUR": Decimal("1"),
        "USD": Decimal("1.08"),
        "GBP": Decimal("0.85"),
        "CHF": Decimal("0.94"),
        "SEK": Decimal("11.20"),
        "NOK": Decimal("11.60"),
        "DKK": Decimal("7.46"),
        "PLN": Decimal("4.27"),
        "CZK": Decimal("24.60"),
        "CAD": Decimal("1.50"),
        "AUD": Decimal("1.65"),
        "BRL": Decimal("6.20"),
        "MXN": Decimal("20.50"),
        "INR": Decimal("92.50"),
        "TRY": Decimal("44.00"),
        "ZAR": Decimal("20.10"),
        "JPY": Decimal("162.5"),
        "KRW": Decimal("1480"),
        "CLP": Decimal("1030"),
        "KWD": Decimal("0.333"),
        "BHD": Decimal("0.407"),
        "JOD": Decimal("0.766"),
        "OMR": Decimal("0.416"),
        "TND": Decimal("3.38"),
    }
)


class RateSource(Protocol):
    """Where mid-market rates come from: the sandbox table here, a market-data vendor in production."""

    def mid_rate(self, source: str, target: str) -> Decimal:
        """Units of `target` for one unit of `source` (major units), or `UnsupportedCurrencyPair`."""
        ...


class SandboxRates:
    """Fixed reference rates against EUR; every other pair is crossed through EUR."""

    def __init__(self, rates_per_eur: Mapping[str, Decimal] = REFERENCE_RATES_PER_EUR) -> None:
        for currency, rate in rates_per_eur.items():
            if currency not in CURRENCY_EXPONENTS:
                raise UnsupportedCurrencyPair(
                    f"unsupported currency {currency!r} in the rate table"
                )
            if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
                raise ValueError(f"rate of {currency} must be a positive finite Decimal: {rate!r}")
        if rates_per_eur.get(PIVOT_CURRENCY) != Decimal(1):
            raise ValueError(f"the table must hold {PIVOT_CURRENCY} at exactly 1")
        self._per_eur = dict(rates_per_eur)

    @property
    def currencies(self) -> frozenset[str]:
        """The currencies this source can price."""
        return frozenset(self._per_eur)

    def mid_rate(self, source: str, target: str) -> Decimal:
        source_per_eur = self._rate_per_eur(source)
        target_per_eur = self._rate_per_eur(target)
        if source == target:
            return Decimal(1)
        with localcontext(prec=RATE_PRECISION):
            # target/EUR divided by source/EUR: (EUR per source) * (target per EUR), one rounding.
            return target_per_eur / source_per_eur

    def _rate_per_eur(self, currency: str) -> Decimal:
        try:
            return self._per_eur[currency]
        except KeyError:
            raise UnsupportedCurrencyPair(f"no rate for currency {currency!r}") from None
