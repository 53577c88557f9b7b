"""Integer tax arithmetic: amounts in minor units, rates in parts per million.

Rounding rule: each tax component of each line is rounded on its own, half-up
(a tie goes away from zero, so -0.5 becomes -1), to the currency's minor unit.
Amounts already are minor units, so rounding to the minor unit is rounding to an
integer; JPY (exponent 0) therefore rounds to whole yen with no special case.
"""

from __future__ import annotations

from collections.abc import Sequence

from tax.model import PPM

ROUNDING_RULE = "per line and tax component, half-up (ties away from zero), to the minor unit"


def div_half_up(numerator: int, denominator: int) -> int:
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def tax_on_net(net: int, rate_ppm: int) -> int:
    return div_half_up(net * rate_ppm, PPM)


def split_gross(gross: int, rates_ppm: Sequence[int]) -> tuple[int, list[int]]:
    """Split a tax-inclusive amount into net and one tax per rate.

    Each tax is the rounded share ``gross * rate / (1 + sum of rates)``; the net is
    what remains, so net + taxes == gross exactly and every tax is within rounding of
    net * rate.
    """
    denominator = PPM + sum(rates_ppm)
    taxes = [div_half_up(gross * rate, denominator) for rate in rates_ppm]
    return gross - sum(taxes), taxes
