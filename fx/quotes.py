"""Pricing of an FX quote: the locked customer rate, the fee and the amount the beneficiary gets.

The rule, in the order it is applied:

1. The customer pays `source_amount` in minor units of the source currency, fee included.
2. The fee is taken first: `ceil(source_amount * fee_bps / 10_000)`, at least `fee_minimum`,
   in minor units of the source currency; rounded up, in the house's favour.
3. The rest, `converted_source = source_amount - fee`, converts at the locked customer rate
   `rate = mid_rate * (1 - spread_bps / 10_000)`, cut down to `RATE_DECIMAL_PLACES` decimals
   (again in the house's favour). The cut rate *is* the locked rate: it is the one stored and
   shown, and the target amount is recomputed from it exactly, so anyone holding the quote can
   check `target_amount` to the minor unit.
4. `target_amount = floor(converted_source * rate * 10**target_exponent / 10**source_exponent)`,
   computed in exact integer arithmetic: rounded down to the target's minor unit. The remainder,
   less than one target minor unit, stays with the house in its FX position.

So `source_amount == fee + converted_source` exactly, no minor unit is created on either side,
and at most one target minor unit (plus the fraction) is kept by the house.

Refused: a currency paysaga does not support or a same-currency pair (`UnsupportedCurrencyPair`:
there is nothing to convert, and charging a spread on a same-currency transfer would be wrong),
a source amount that is not a positive integer (`InvalidSourceAmount`), a fee that eats the whole amount
or a conversion worth less than one target minor unit (`QuoteTooSmall`: the customer would pay
and the beneficiary receive nothing), and an unusable mid rate, spread or fee (`InvalidPricing`).
Rates are `Decimal` end to end and travel as plain decimal strings (`format_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext

from domain.money import UnsupportedCurrency, exponent
from fx.errors import InvalidPricing, InvalidSourceAmount, QuoteTooSmall, UnsupportedCurrencyPair

BPS_PER_UNIT = 10_000
RATE_DECIMAL_PLACES = 10
_RATE_QUANTUM = Decimal(1).scaleb(-RATE_DECIMAL_PLACES)
# Exact for any mid rate below 10**30 with any number of places the quantum keeps.
_PRICING_PRECISION = 60


@dataclass(frozen=True, slots=True)
class QuotePrice:
    """A priced quote. Amounts are integer minor units; `rate` is target per source, major units."""

    source_currency: str
    target_currency: str
    source_amount: int  # what the customer pays, fee included
    mid_rate: Decimal  # the market mid rate the price was made from
    rate: Decimal  # the locked customer rate, at most RATE_DECIMAL_PLACES decimals
    fee: int  # minor units of the source currency
    converted_source: int  # source_amount - fee: what converts at `rate`
    target_amount: int  # minor units of the target currency, rounded down


def customer_rate(mid_rate: Decimal, spread_bps: int) -> Decimal:
    """`mid_rate` less the spread, cut down to `RATE_DECIMAL_PLACES` decimals (house's favour)."""
    if not isinstance(mid_rate, Decimal) or not mid_rate.is_finite() or mid_rate <= 0:
        raise InvalidPricing(f"mid rate must be a positive finite Decimal, not {mid_rate!r}")
    _check_bps("spread_bps", spread_bps)
    with localcontext(prec=_PRICING_PRECISION) as ctx:
        try:
            rate = (mid_rate * (BPS_PER_UNIT - spread_bps) / BPS_PER_UNIT).quantize(
                _RATE_QUANTUM, rounding=ROUND_DOWN, context=ctx
            )
        except InvalidOperation:
            raise InvalidPricing(f"mid rate {mid_rate} is out of range") from None
    if rate <= 0:
        raise InvalidPricing(
            f"rate {mid_rate} less {spread_bps} bps is below {_RATE_QUANTUM}: quote the other way"
        )
    return rate


def price_quote(
    source_currency: str,
    target_currency: str,
    source_amount: int,
    mid_rate: Decimal,
    spread_bps: int,
    fee_bps: int,
    *,
    fee_minimum: int = 0,
) -> QuotePrice:
    """Price a conversion of `source_amount` (minor units, fee included) by the module's rule.

    `mid_rate` is units of target per unit of source (major units); `fee_minimum` is in minor
    units of the source currency.
    """
    try:
        source_exponent = exponent(source_currency)
        target_exponent = exponent(target_currency)
    except UnsupportedCurrency as exc:
        raise UnsupportedCurrencyPair(str(exc)) from None
    if source_currency == target_currency:
        raise UnsupportedCurrencyPair(f"no conversion from {source_currency} to itself")
    if isinstance(source_amount, bool) or not isinstance(source_amount, int):
        raise InvalidSourceAmount(
            f"source amount must be integer minor units, not {source_amount!r}"
        )
    if source_amount <= 0:
        raise InvalidSourceAmount(f"source amount must be positive, not {source_amount}")
    _check_bps("fee_bps", fee_bps)
    if isinstance(fee_minimum, bool) or not isinstance(fee_minimum, int) or fee_minimum < 0:
        raise InvalidPricing(f"fee_minimum must be a non-negative integer, not {fee_minimum!r}")
    rate = customer_rate(mid_rate, spread_bps)

    fee = max(-(-source_amount * fee_bps // BPS_PER_UNIT), fee_minimum)
    converted_source = source_amount - fee
    if converted_source <= 0:
        raise QuoteTooSmall(
            f"the fee of {fee} {source_currency} minor units takes all of {source_amount}"
        )
    target_amount = _convert_rounding_down(
        converted_source, rate, target_exponent - source_exponent
    )
    if target_amount <= 0:
        raise QuoteTooSmall(
            f"{converted_source} {source_currency} minor units at {format_rate(rate)} "
            f"make less than one {target_currency} minor unit"
        )
    return QuotePrice(
        source_currency=source_currency,
        target_currency=target_currency,
        source_amount=source_amount,
        mid_rate=mid_rate,
        rate=rate,
        fee=fee,
        converted_source=converted_source,
        target_amount=target_amount,
    )


def format_rate(rate: Decimal) -> str:
    """`rate` as a plain decimal string, at most `RATE_DECIMAL_PLACES` decimals, no exponent."""
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise InvalidPricing(f"a rate is a positive finite Decimal, not {rate!r}")
    with localcontext(prec=_PRICING_PRECISION) as ctx:
        cut = rate.quantize(_RATE_QUANTUM, rounding=ROUND_DOWN, context=ctx)
    text = f"{cut:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _convert_rounding_down(amount: int, rate: Decimal, exponent_shift: int) -> int:
    # Exact rational arithmetic: a Decimal is numerator / denominator with integer parts.
    numerator, denominator = rate.as_integer_ratio()
    scale: int = 10 ** abs(exponent_shift)
    if exponent_shift >= 0:
        return amount * numerator * scale // denominator
    return amount * numerator // (denominator * scale)


def _check_bps(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < BPS_PER_UNIT:
        raise InvalidPricing(
            f"{name} must be an integer from 0 to {BPS_PER_UNIT - 1}, not {value!r}"
        )
