"""Input checks both engines apply before quoting, so bad input fails the same way."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from billing.money import UnknownCurrencyError, currency_exponent
from tax.errors import (
    MixedCurrencyError,
    NaiveDatetimeError,
    TaxInputError,
    UnsupportedCurrencyError,
)
from tax.model import TaxableLine


def require_aware(at: datetime) -> date:
    if at.tzinfo is None or at.utcoffset() is None:
        raise NaiveDatetimeError("`at` must be a timezone-aware datetime (UTC)")
    return at.astimezone(UTC).date()


def single_currency(lines: Sequence[TaxableLine]) -> tuple[str, int]:
    if not lines:
        raise TaxInputError("a quote needs at least one line")
    currencies = {line.currency for line in lines}
    if len(currencies) > 1:
        raise MixedCurrencyError(f"lines use several currencies: {sorted(currencies)}")
    currency = currencies.pop()
    try:
        return currency, currency_exponent(currency)
    except UnknownCurrencyError:
        raise UnsupportedCurrencyError(
            f"{currency!r} is not a supported ISO 4217 currency"
        ) from None


def check_lines(lines: Sequence[TaxableLine]) -> None:
    ids = [line.line_id for line in lines]
    if len(set(ids)) != len(ids):
        raise TaxInputError("line ids must be unique within a quote")
    for line in lines:
        if type(line.amount) is not int:
            raise TaxInputError(f"line {line.line_id}: amount must be int minor units")
