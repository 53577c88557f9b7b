"""The tax engines a deployment can run, picked by their setting name.

``builtin`` is ``tax.BuiltinTaxEngine`` (offline, pure); ``stripe`` is
``activities.stripe_tax.StripeTaxEngine``, which calls Stripe Tax and so lives beside
the other gateway adapters rather than in the pure ``tax`` package.
"""

from __future__ import annotations

from typing import Any

from tax import BuiltinTaxEngine, TaxConfigError, TaxEngine

ENGINE_NAMES = ("builtin", "stripe")


def make_engine(name: str, **deps: Any) -> TaxEngine:
    """``builtin``: optional ``seller_country``, ``rate_table``, ``vat_checker``.
    ``stripe``: ``client`` (a ``stripe.StripeClient``), or ``api_key`` and optional
    ``api_base`` to build one; optional ``tax_codes``."""
    if name == "builtin":
        return BuiltinTaxEngine(**deps)
    if name == "stripe":
        import stripe

        from activities.stripe_tax import StripeTaxEngine

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
