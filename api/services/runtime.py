"""Per-process collaborators of the API routes, built lazily and kept on ``app.state``.

The lifespan in ``api.app`` may set any of them up front (tests and the lead's wiring
do); otherwise the first request builds them from the settings: the Stripe gateway,
the plan catalog, the tax engine and the seller's tax registrations (from the
compliance ledger, the same source the worker quotes with).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from activities.stripe_gateway import StripeGateway
from api.temporal_client import TemporalConnection
from billing.catalog import Catalog, load_catalog
from dunwell.settings import Settings
from ledger.compliance import ComplianceLedger
from tax import BuiltinTaxEngine, ExemptionCertificate, Registration, TaxEngine


def _state(request: Request, name: str) -> Any:
    return getattr(request.app.state, name, None)


def get_gateway(request: Request) -> StripeGateway:
    gateway = _state(request, "gateway")
    if gateway is None:
        settings: Settings = request.app.state.settings
        gateway = StripeGateway(
            settings.stripe_api_key.get_secret_value(), settings.stripe_api_base
        )
        request.app.state.gateway = gateway
    assert isinstance(gateway, StripeGateway)
    return gateway


def get_catalog(request: Request) -> Catalog:
    catalog = _state(request, "catalog")
    if catalog is None:
        catalog = load_catalog()
        request.app.state.catalog = catalog
    assert isinstance(catalog, Catalog)
    return catalog


def get_tax_engine(request: Request) -> TaxEngine:
    engine = _state(request, "tax_engine")
    if engine is None:
        engine = BuiltinTaxEngine()
        request.app.state.tax_engine = engine
    tax_engine: TaxEngine = engine
    return tax_engine


async def get_registrations(request: Request) -> Sequence[Registration]:
    fixed = _state(request, "tax_registrations")
    if fixed is not None:
        registrations: Sequence[Registration] = fixed
        return registrations
    ledger = ComplianceLedger(request.app.state.engine)
    return await asyncio.to_thread(ledger.registrations)


async def exemption_certificates(
    request: Request, customer_id: str, at: datetime
) -> tuple[ExemptionCertificate, ...]:
    """The customer's exemption certificates as recorded up to ``at`` (what a quote
    the worker made at that instant would use)."""
    ledger = ComplianceLedger(request.app.state.engine)
    return await asyncio.to_thread(ledger.exemption_certificates, customer_id, known_at=at)


def get_temporal(request: Request) -> TemporalConnection:
    """The lazy Temporal connection; ``await .get()`` is the client or a 503 with
    Retry-After. Routes call it only after validating and authorizing the request."""
    connection: TemporalConnection = request.app.state.temporal
    return connection


def utc_now() -> datetime:
    return datetime.now(UTC)


GatewayDep = Annotated[StripeGateway, Depends(get_gateway)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
TaxEngineDep = Annotated[TaxEngine, Depends(get_tax_engine)]
RegistrationsDep = Annotated[Sequence[Registration], Depends(get_registrations)]
TemporalDep = Annotated[TemporalConnection, Depends(get_temporal)]
