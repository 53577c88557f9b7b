"""Money as integer minor units of an ISO 4217 currency.

There are no floats on the money path: amounts are ``int`` minor units and every
currency carries its exponent (JPY has 0 decimals, USD 2, KWD 3).
"""

from __future__ import annotations

from dataclasses import dataclass

# ISO 4217 minor-unit exponents for the currencies Dunwell accepts.
# Source: ISO 4217 list one (SIX Group, "Current currency & funds code list").
_EXPONENTS: dict[str, int] = {
    # three decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # zero decimals
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # two decimals
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2,
    "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2,
    "IDR": 2, "ILS": 2, "INR": 2, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2, "NZD": 2,
    "PHP": 2, "PKR": 2, "PLN": 2, "RON": 2, "RSD": 2, "SAR": 2, "SEK": 2, "SGD": 2,
    "THB": 2, "TRY": 2, "TWD": 2, "UAH": 2, "USD": 2, "ZAR": 2,
}  # fmt: skip


class UnknownCurrencyError(ValueError):
    """The currency code is not an ISO 4217 code Dunwell supports."""


def currency_exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit."""
    try:
        return _EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrencyError(f"unsupported currency {currency!r}") from None


def is_supported_currency(currency: str) -> bool:
    return currency in _EXPONENTS


def supported_currencies() -> frozenset[str]:
    return frozenset(_EXPONENTS)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of one currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:  # bool and float are both refused
            raise TypeError(f"amount must be an int of minor units, got {self.amount!r}")
        currency_exponent(self.currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def format(self) -> str:
        """Human display, e.g. ``12.50 EUR``; never used for arithmetic."""
        exponent = currency_exponent(self.currency)
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**exponent) if exponent else (abs(self.amount), 0)
        if exponent == 0:
            return f"{sign}{whole} {self.currency}"
        return f"{sign}{whole}.{frac:0{exponent}d} {self.currency}"
