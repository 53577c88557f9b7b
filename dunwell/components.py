"""Factories for the collaborators that both the worker and the API build from settings,
so the two always quote tax and talk to the gateway the same way."""

from __future__ import annotations

from sqlalchemy import Engine

from activities.gateway_rate import SharedRateLimit, store_take
from activities.stripe_gateway import StripeGateway
from activities.tax_engines import make_engine
from dunwell.settings import Settings
from tax import TaxEngine


def build_tax_engine(settings: Settings) -> TaxEngine:
    if settings.tax_engine == "stripe":
        return make_engine(
            "stripe",
            api_key=settings.stripe_api_key.get_secret_value(),
            api_base=settings.stripe_api_base,
        )
    return make_engine("builtin", seller_country=settings.seller_country)


def build_gateway(settings: Settings, engine: Engine | None = None) -> StripeGateway:
    """The Stripe adapter; with ``engine``, under the request limit every process shares
    through that database (``DUNWELL_GATEWAY_REQUESTS_PER_SECOND``, 0: no limit)."""
    limit = settings.gateway_requests_per_second
    rate_limit = (
        SharedRateLimit(store_take(engine), limit) if engine is not None and limit > 0 else None
    )
    return StripeGateway(
        settings.stripe_api_key.get_secret_value(), settings.stripe_api_base, rate_limit=rate_limit
    )
