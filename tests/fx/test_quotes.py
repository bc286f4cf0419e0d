"""Quote pricing: the fee rounds up, the target rounds down, nothing is created or lost."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import CURRENCY_EXPONENTS
from fx import (
    FxError,
    InvalidPricing,
    InvalidSourceAmount,
    QuotePrice,
    QuoteTooSmall,
    SandboxRates,
    UnsupportedCurrencyPair,
    customer_rate,
    format_rate,
    price_quote,
)

RATES = SandboxRates()
SPREAD_BPS = 50
FEE_BPS = 30


def sandbox_quote(
    source: str, target: str, amount: int, spread: int = SPREAD_BPS, fee: int = FEE_BPS
) -> QuotePrice:
    return price_quote(source, target, amount, RATES.mid_rate(source, target), spread, fee)


# Examples, computed by hand.


def test_price_quote_eur_to_usd() -> None:
    price = sandbox_quote("EUR", "USD", 10_000)
    assert price.rate == Decimal("1.0746")  # 1.08 * (1 - 0.0050)
    assert price.fee == 30  # 0.30% of 100.00 EUR
    assert price.converted_source == 9_970
    assert price.target_amount == 10_713  # 99.70 * 1.0746 = 107.13762 USD
    assert (price.source_currency, price.target_currency, price.source_amount) == (
        "EUR",
        "USD",
        10_000,
    )
    assert price.mid_rate == Decimal("1.08")


def test_price_quote_eur_to_jpy_rounds_target_down() -> None:
    price = sandbox_quote("EUR", "JPY", 10_000)
    assert price.rate == Decimal("161.6875")
    assert price.target_amount == 16_120  # 99.70 * 161.6875 = 16,120.24375 JPY


def test_price_quote_eur_cent_to_jpy() -> None:
    price = sandbox_quote("EUR", "JPY", 1, spread=0, fee=0)
    assert price.target_amount == 1  # 0.01 EUR = 1.625 JPY


def test_price_quote_jpy_to_eur_rounds_fee_up_and_target_down() -> None:
    price = sandbox_quote("JPY", "EUR", 1_001)
    assert price.rate == Decimal("0.0061230769")  # 0.995 / 162.5 = 0.00612307692..., cut down
    assert price.fee == 4  # 3.003 JPY, rounded up
    assert price.converted_source == 997
    assert price.target_amount == 610  # 997 * 0.0061230769 = 6.1047076... EUR


def test_price_quote_jpy_to_eur_too_small_for_one_cent() -> None:
    with pytest.raises(QuoteTooSmall):
        sandbox_quote("JPY", "EUR", 1, spread=0, fee=0)  # 1 JPY = 0.615 cents
    assert sandbox_quote("JPY", "EUR", 2, spread=0, fee=0).target_amount == 1  # 1.23 cents


def test_price_quote_eur_to_kwd() -> None:
    price = sandbox_quote("EUR", "KWD", 10_000)
    assert price.rate == Decimal("0.331335")
    assert price.target_amount == 33_034  # 99.70 * 0.331335 = 33.0340995 KWD


def test_price_quote_kwd_to_usd() -> None:
    price = sandbox_quote("KWD", "USD", 10_000)
    assert price.rate == Decimal("3.227027027")  # 1.08 / 0.333 * 0.995 = 3.2270270270...
    assert price.fee == 30
    assert price.target_amount == 3_217  # 9.970 KWD * 3.227027027 = 32.17345945... USD


def test_price_quote_kwd_fils_to_usd_cents() -> None:
    assert sandbox_quote("KWD", "USD", 4, spread=0, fee=0).target_amount == 1  # 1.297 cents
    with pytest.raises(QuoteTooSmall):
        sandbox_quote("KWD", "USD", 3, spread=0, fee=0)  # 0.973 cents


def test_price_quote_fee_minimum() -> None:
    price = price_quote("EUR", "USD", 1_000, Decimal("1.08"), 0, FEE_BPS, fee_minimum=50)
    assert price.fee == 50
    assert price.target_amount == 1_026  # 9.50 EUR * 1.08


@pytest.mark.parametrize(
    ("amount", "fee_bps", "fee_minimum"), [(1, FEE_BPS, 0), (1, 9_999, 0), (100, 0, 100)]
)
def test_price_quote_refuses_fee_eating_the_amount(
    amount: int, fee_bps: int, fee_minimum: int
) -> None:
    with pytest.raises(QuoteTooSmall) as raised:
        price_quote(
            "EUR", "USD", amount, Decimal("1.08"), SPREAD_BPS, fee_bps, fee_minimum=fee_minimum
        )
    assert raised.value.code == "quote_too_small"


@pytest.mark.parametrize(
    ("source", "target"), [("EUR", "EUR"), ("EUR", "XXX"), ("XXX", "EUR"), ("eur", "usd")]
)
def test_price_quote_refuses_currency_pair(source: str, target: str) -> None:
    with pytest.raises(UnsupportedCurrencyPair):
        price_quote(source, target, 10_000, Decimal("1.08"), SPREAD_BPS, FEE_BPS)


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, Decimal(100), "100"])
def test_price_quote_refuses_amount(amount: object) -> None:
    with pytest.raises(InvalidSourceAmount):
        price_quote("EUR", "USD", amount, Decimal("1.08"), SPREAD_BPS, FEE_BPS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mid_rate", "spread_bps", "fee_bps", "fee_minimum"),
    [
        (1.08, SPREAD_BPS, FEE_BPS, 0),  # a float rate: no float touches money
        (Decimal(0), SPREAD_BPS, FEE_BPS, 0),
        (Decimal("-1.08"), SPREAD_BPS, FEE_BPS, 0),
        (Decimal("NaN"), SPREAD_BPS, FEE_BPS, 0),
        (Decimal("Infinity"), SPREAD_BPS, FEE_BPS, 0),
        (Decimal("1E-11"), SPREAD_BPS, FEE_BPS, 0),  # cut to 10 decimals, nothing is left
        (Decimal("1E+60"), SPREAD_BPS, FEE_BPS, 0),
        (Decimal("1.08"), -1, FEE_BPS, 0),
        (Decimal("1.08"), 10_000, FEE_BPS, 0),
        (Decimal("1.08"), SPREAD_BPS, -1, 0),
        (Decimal("1.08"), SPREAD_BPS, 10_000, 0),
        (Decimal("1.08"), SPREAD_BPS, FEE_BPS, -1),
    ],
)
def test_price_quote_refuses_pricing(
    mid_rate: Decimal, spread_bps: int, fee_bps: int, fee_minimum: int
) -> None:
    with pytest.raises(InvalidPricing):
        price_quote("EUR", "USD", 10_000, mid_rate, spread_bps, fee_bps, fee_minimum=fee_minimum)


def test_errors_share_one_hierarchy() -> None:
    for error in (UnsupportedCurrencyPair, QuoteTooSmall, InvalidSourceAmount, InvalidPricing):
        assert issubclass(error, FxError)
        assert issubclass(error, ValueError)
    codes = {
        e.code
        for e in (UnsupportedCurrencyPair, QuoteTooSmall, InvalidSourceAmount, InvalidPricing)
    }
    assert len(codes) == 4


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Decimal("1.0746000000"), "1.0746"),
        (Decimal("162.5"), "162.5"),
        (Decimal("1E+2"), "100"),
        (Decimal("3"), "3"),
        (Decimal("1.23456789019"), "1.2345678901"),
        (Decimal("6.1E-3"), "0.0061"),
        (Decimal("0.00000000012345"), "0.0000000001"),
    ],
)
def test_format_rate(rate: Decimal, text: str) -> None:
    assert format_rate(rate) == text


@pytest.mark.parametrize("rate", [Decimal(0), Decimal("-1"), Decimal("NaN"), Decimal("Infinity")])
def test_format_rate_refuses_non_rates(rate: Decimal) -> None:
    with pytest.raises(InvalidPricing):
        format_rate(rate)


def test_customer_rate_cuts_down_to_ten_decimals() -> None:
    assert customer_rate(Decimal("0.123456789099"), 0) == Decimal("0.1234567890")
    assert customer_rate(Decimal("2"), 50) == Decimal("1.99")


# Properties.

CURRENCIES = sorted(CURRENCY_EXPONENTS)
pairs = st.lists(st.sampled_from(CURRENCIES), min_size=2, max_size=2, unique=True).map(
    lambda pair: (pair[0], pair[1])
)
amounts = st.integers(min_value=1, max_value=10**12)
mid_rates = st.decimals(
    min_value=Decimal("0.0001"),
    max_value=Decimal(100_000),
    places=10,
    allow_nan=False,
    allow_infinity=False,
)
spreads = st.integers(min_value=0, max_value=1_000)
fees = st.integers(min_value=0, max_value=1_000)


def exact_target(converted_source: int, rate: Decimal, source: str, target: str) -> Fraction:
    shift = CURRENCY_EXPONENTS[target] - CURRENCY_EXPONENTS[source]
    return Fraction(converted_source) * Fraction(rate) * Fraction(10) ** shift


def target_or_zero(
    source: str, target: str, amount: int, mid: Decimal, spread: int, fee: int
) -> int:
    try:
        return price_quote(source, target, amount, mid, spread, fee).target_amount
    except QuoteTooSmall:
        return 0


@given(pairs, amounts, mid_rates, spreads, fees, st.booleans())
def test_price_quote_never_creates_money(
    pair: tuple[str, str], amount: int, mid: Decimal, spread: int, fee_bps: int, use_sandbox: bool
) -> None:
    source, target = pair
    if use_sandbox:
        mid = RATES.mid_rate(source, target)
    exact_fee = Fraction(amount * fee_bps, 10_000)
    try:
        price = price_quote(source, target, amount, mid, spread, fee_bps)
    except QuoteTooSmall:
        # Refused only when the customer would truly get nothing.
        fee = -(-amount * fee_bps // 10_000)
        rate = customer_rate(mid, spread)
        assert amount - fee <= 0 or exact_target(amount - fee, rate, source, target) < 1
        return

    # The locked rate: the mid less the spread, cut to 10 decimals, never above.
    spread_rate = Fraction(mid) * (10_000 - spread) / 10_000
    assert spread_rate - Fraction(1, 10**10) < price.rate <= spread_rate
    assert Decimal(format_rate(price.rate)) == price.rate
    assert "E" not in format_rate(price.rate).upper()

    # The fee: integer, rounded up, by less than one minor unit.
    assert isinstance(price.fee, int)
    assert exact_fee <= price.fee < exact_fee + 1
    # Nothing lost on the source side.
    assert price.fee + price.converted_source == price.source_amount == amount
    assert price.converted_source > 0

    # The target: integer, rounded down, by less than one minor unit.
    exact = exact_target(price.converted_source, price.rate, source, target)
    assert isinstance(price.target_amount, int)
    assert 1 <= price.target_amount <= exact < price.target_amount + 1


@given(pairs, amounts, amounts, mid_rates, spreads, fees)
def test_price_quote_is_monotonic_in_amount(
    pair: tuple[str, str], first: int, second: int, mid: Decimal, spread: int, fee_bps: int
) -> None:
    smaller, larger = sorted((first, second))
    source, target = pair
    assert target_or_zero(source, target, smaller, mid, spread, fee_bps) <= target_or_zero(
        source, target, larger, mid, spread, fee_bps
    )
    assert target_or_zero(source, target, larger, mid, spread, fee_bps) <= target_or_zero(
        source, target, larger + 1, mid, spread, fee_bps
    )
