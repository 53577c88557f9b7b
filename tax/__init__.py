"""Dunwell's tax engine: the ``TaxEngine`` interface and the built-in engine, pure.

``BuiltinTaxEngine`` (default, offline) reads the effective-dated, sourced rate files
in ``tax/data``. Rounding: per line and tax component, half-up (ties away from zero),
to the currency's minor unit; every quote states the rule it used in
``rounding_rule``. The engines that do network I/O live with the other adapters:
``activities.stripe_tax`` (Stripe Tax) and ``activities.vies`` (the live VAT ID
check); ``activities.tax_engines.make_engine`` picks an engine by its setting name.

May import: ``billing`` and the standard library (plus ``stdnum``, offline VAT ID
checks). No I/O package (database, gateway, HTTP, Temporal) and none of Dunwell's I/O
packages (``ledger``, ``stores``, ``activities``, ``api``, ``workflows``, ``dunwell``).
"""

from __future__ import annotations

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

__all__ = [
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
    "validate_vat_id",
]
