"""The sandbox rate table: identities, crosses through EUR, refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import CURRENCY_EXPONENTS
from fx import REFERENCE_RATES_PER_EUR, RateSource, SandboxRates, UnsupportedCurrencyPair

RATES = SandboxRates()
CURRENCIES = sorted(RATES.currencies)
# The cross is one division at 34 digits, the legs two roundings (here at the default 28 digits):
# equal far beyond the 10 decimals a quote keeps.
TOLERANCE = Decimal("1e-25")


def test_table_covers_every_supported_currency() -> None:
    assert set(REFERENCE_RATES_PER_EUR) == set(CURRENCY_EXPONENTS)
    assert {"EUR", "USD", "GBP", "JPY", "KWD", "CHF", "SEK", "PLN"} <= RATES.currencies


def test_sandbox_rates_is_a_rate_source() -> None:
    source: RateSource = RATES
    assert source.mid_rate("EUR", "USD") == Decimal("1.08")


def test_mid_rate_from_eur_is_the_table_value() -> None:
    assert RATES.mid_rate("EUR", "JPY") == Decimal("162.5")
    assert RATES.mid_rate("EUR", "KWD") == Decimal("0.333")


def test_mid_rate_to_eur_is_the_inverse() -> None:
    assert abs(RATES.mid_rate("USD", "EUR") * Decimal("1.08") - 1) < TOLERANCE


def test_mid_rate_same_currency_is_one() -> None:
    assert RATES.mid_rate("GBP", "GBP") == Decimal(1)


def test_mid_rate_cross_equals_the_product_of_the_legs() -> None:
    cross = RATES.mid_rate("GBP", "JPY")
    legs = RATES.mid_rate("GBP", "EUR") * RATES.mid_rate("EUR", "JPY")
    assert abs(cross / (Decimal("162.5") / Decimal("0.85")) - 1) < TOLERANCE
    assert abs(cross / legs - 1) < TOLERANCE


@given(st.sampled_from(CURRENCIES), st.sampled_from(CURRENCIES))
def test_mid_rate_cross_through_eur_property(source: str, target: str) -> None:
    cross = RATES.mid_rate(source, target)
    legs = RATES.mid_rate(source, "EUR") * RATES.mid_rate("EUR", target)
    assert cross > 0
    assert abs(cross / legs - 1) < TOLERANCE
    assert abs(cross * RATES.mid_rate(target, source) - 1) < TOLERANCE


@pytest.mark.parametrize(("source", "target"), [("EUR", "XXX"), ("eur", "USD"), ("USD", "")])
def test_mid_rate_refuses_unknown_currency(source: str, target: str) -> None:
    with pytest.raises(UnsupportedCurrencyPair):
        RATES.mid_rate(source, target)


def test_mid_rate_refuses_currency_missing_from_a_custom_table() -> None:
    rates = SandboxRates({"EUR": Decimal(1), "USD": Decimal("1.10")})
    assert abs(rates.mid_rate("USD", "EUR") * Decimal("1.10") - 1) < TOLERANCE
    with pytest.raises(UnsupportedCurrencyPair):
        rates.mid_rate("EUR", "JPY")


@pytest.mark.parametrize(
    "table",
    [
        {"EUR": Decimal(1), "USD": Decimal(0)},
        {"EUR": Decimal(1), "USD": Decimal("NaN")},
        {"EUR": Decimal("1.01"), "USD": Decimal("1.08")},
        {"USD": Decimal("1.08")},
    ],
)
def test_sandbox_rates_refuse_a_broken_table(table: dict[str, Decimal]) -> None:
    with pytest.raises(ValueError):
        SandboxRates(table)


def test_sandbox_rates_refuse_an_unsupported_currency_in_the_table() -> None:
    with pytest.raises(UnsupportedCurrencyPair):
        SandboxRates({"EUR": Decimal(1), "XAU": Decimal("0.0004")})
