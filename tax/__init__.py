"""Dunwell's tax engine: one ``TaxEngine`` interface, two implementations.

``BuiltinTaxEngine`` (default, offline) reads the effective-dated, sourced rate files
in ``tax/data``; ``StripeTaxEngine`` asks Stripe Tax. ``make_engine("builtin" |
"stripe", **deps)`` picks one by its setting name. Rounding: per line and tax
component, half-up (ties away from zero), to the currency's minor unit; every quote
states the rule it used in ``rounding_rule``.
"""

from __future__ import annotations

from typing import Any

from tax.builtin import REVERSE_CHARGE_MENTION, BuiltinTaxEngine
from tax.engine import TaxEngine, aquote
from tax.errors import (
    InvalidVatIdError,
    MissingAddressError,
    MixedCurrencyError,
    NaiveDatetimeError,
    RateDataError,
    TaxConfigError,
    TaxError,
    TaxInputError,
    TaxProviderError,
    UnknownCountryError,
    UnknownRegionError,
    UnsupportedCurrencyError,
    UnsupportedTaxCodeError,
)
from tax.model import (
    Address,
    Evidence,
    ExemptionCertificate,
    QuoteLine,
    Registration,
    TaxableLine,
    TaxBehavior,
    TaxComponent,
    TaxCustomer,
    TaxQuote,
    TaxReason,
    TaxType,
    VatCheckResult,
)
from tax.rates import RateTable, load_rate_table
from tax.rounding import ROUNDING_RULE
from tax.vat_ids import VatIdChecker, validate_vat_id

ENGINE_NAMES = ("builtin", "stripe")


def make_engine(name: str, **deps: Any) -> TaxEngine:
    """``builtin``: optional ``seller_country``, ``rate_table``, ``vat_checker``.
    ``stripe``: ``client`` (a ``stripe.StripeClient``), or ``api_key`` and optional
    ``api_base`` to build one; optional ``tax_codes``."""
    if name == "builtin":
        return BuiltinTaxEngine(**deps)
    if name == "stripe":
        import stripe

        from tax.stripe_engine import StripeTaxEngine

        client = deps.pop("client", None)
        if client is None:
            api_key = deps.pop("api_key", None)
            if not api_key:
                raise TaxConfigError("the stripe tax engine needs `client` or `api_key`")
            api_base = deps.pop("api_base", None)
            client = stripe.StripeClient(
                api_key, base_addresses={"api": api_base} if api_base else {}
            )
        return StripeTaxEngine(client, **deps)
    raise TaxConfigError(f"unknown tax engine {name!r}; expected one of {ENGINE_NAMES}")


__all__ = [
    "ENGINE_NAMES",
    "REVERSE_CHARGE_MENTION",
    "ROUNDING_RULE",
    "Address",
    "BuiltinTaxEngine",
    "Evidence",
    "ExemptionCertificate",
    "InvalidVatIdError",
    "MissingAddressError",
    "MixedCurrencyError",
    "NaiveDatetimeError",
    "QuoteLine",
    "RateDataError",
    "RateTable",
    "Registration",
    "TaxBehavior",
    "TaxComponent",
    "TaxConfigError",
    "TaxCustomer",
    "TaxEngine",
    "TaxError",
    "TaxInputError",
    "TaxProviderError",
    "TaxQuote",
    "TaxReason",
    "TaxType",
    "TaxableLine",
    "UnknownCountryError",
    "UnknownRegionError",
    "UnsupportedCurrencyError",
    "UnsupportedTaxCodeError",
    "VatCheckResult",
    "VatIdChecker",
    "aquote",
    "load_rate_table",
    "make_engine",
    "validate_vat_id",
]
