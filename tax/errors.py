"""Typed tax errors. Callers catch ``TaxError``; the subclasses say what was wrong.

TaxError
├── TaxInputError            the request cannot be quoted as given
│   ├── MissingAddressError      no billing address, or no state/province where one decides
│   ├── UnknownCountryError      not an ISO 3166-1 alpha-2 code
│   ├── UnknownRegionError       not a state/province of that country
│   ├── UnsupportedCurrencyError not an ISO 4217 currency known to billing.money
│   ├── MixedCurrencyError       lines in more than one currency
│   ├── UnsupportedTaxCodeError  a product tax code the built-in engine has no rules for
│   ├── InvalidVatIdError        raised only by ``validate_vat_id`` (form validation);
│   │                            quotes record an invalid ID as evidence instead
│   └── NaiveDatetimeError       ``at`` without a timezone
├── RateDataError            the rate data cannot answer (no rate in force, bad file)
├── TaxConfigError           unknown engine name or missing engine dependency
└── TaxProviderError         the external engine (Stripe Tax) failed or answered oddly
"""

from __future__ import annotations


class TaxError(Exception):
    """Base of every tax engine error."""


class TaxInputError(TaxError):
    pass


class MissingAddressError(TaxInputError):
    pass


class UnknownCountryError(TaxInputError):
    pass


class UnknownRegionError(TaxInputError):
    pass


class UnsupportedCurrencyError(TaxInputError):
    pass


class MixedCurrencyError(TaxInputError):
    pass


class UnsupportedTaxCodeError(TaxInputError):
    pass


class InvalidVatIdError(TaxInputError):
    pass


class NaiveDatetimeError(TaxInputError):
    pass


class RateDataError(TaxError):
    pass


class TaxConfigError(TaxError):
    pass


class TaxProviderError(TaxError):
    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
