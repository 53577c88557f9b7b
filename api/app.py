"""The FastAPI application: server API, portal API, webhook intake, ops API.

Wiring happens here (the lifespan) and in ``worker.py``; nothing imports ``api``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api.errors import ErrorResponse, install_error_handlers
from api.openapi import install_openapi
from api.pan_guard import PanGuard
from api.rate_limit import RateLimit
from api.routes import (
    access,
    audit_ops,
    codec,
    customers,
    dev,
    dispute_ops,
    docs,
    documents,
    dunning_ops,
    endpoints,
    gateway_alerts,
    health,
    ops,
    ops_notes,
    outbound_ops,
    portal,
    portal_notifications,
    recon_ops,
    refund_ops,
    relay,
    review_ops,
    subscriptions,
    tax_nexus,
    tax_records,
    tax_reports,
    tax_returns,
    webhooks,
)
from api.services.event_recorder import EventRecorder
from api.temporal_client import TemporalConnection
from billing.catalog import load_catalog
from dunwell.codec import EncryptionCodec
from dunwell.components import build_gateway, build_tax_engine
from dunwell.heap import freeze_startup_heap
from dunwell.logs import install_redaction
from dunwell.settings import Environment, Settings, get_settings
from ledger.db import make_engine


def create_app(
    settings: Settings | None = None,
    *,
    temporal_client: Client | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    install_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = make_engine(settings.database_url)
        app.state.event_recorder = EventRecorder(app.state.engine, lease=webhooks.DELIVERY_LEASE)
        app.state.temporal = TemporalConnection(settings, temporal_client)
        app.state.catalog = load_catalog()
        app.state.tax_engine = build_tax_engine(settings)
        app.state.gateway = build_gateway(settings, app.state.engine)
        keys = settings.payload_key_set()
        app.state.codec = EncryptionCodec(keys) if keys is not None else None
        if freeze_heap:
            freeze_startup_heap()
        try:
            yield
        finally:
            await app.state.event_recorder.flush()
            app.state.gateway.close()
            app.state.engine.dispose()

    app = FastAPI(
        title="Dunwell",
        version="0.1.0",
        summary="Billing orchestration: subscriptions, portal, dunning, tax and ledger.",
        lifespan=lifespan,
        # Served by api.routes.docs from an installed package, never from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(
        app, ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    # First: the gateways' deliveries are most of the traffic, and routes match in order.
    app.include_router(webhooks.router)
    app.include_router(relay.router)
    app.include_router(health.router)
    app.include_router(ops.router)
    app.include_router(audit_ops.router)
    app.include_router(tax_reports.router)
    app.include_router(tax_returns.router)
    app.include_router(tax_records.router)
    app.include_router(tax_nexus.router)
    app.include_router(ops_notes.router)
    app.include_router(outbound_ops.router)
    app.include_router(dunning_ops.router)
    app.include_router(review_ops.router)
    app.include_router(recon_ops.router)
    app.include_router(refund_ops.router)
    app.include_router(dispute_ops.router)
    app.include_router(gateway_alerts.router)
    app.include_router(customers.router)
    app.include_router(subscriptions.router)
    app.include_router(access.router)
    app.include_router(endpoints.router)
    app.include_router(portal.router)
    app.include_router(portal_notifications.router)
    app.include_router(documents.server)
    app.include_router(documents.portal)
    app.include_router(portal.page_router)
    app.include_router(docs.router)
    app.include_router(codec.router)
    # A body carrying card data is refused before any route or log sees it.
    app.add_middleware(PanGuard)
    # Outermost: a flood is answered before the guard reads its bodies.
    app.add_middleware(RateLimit, settings=settings)
    if settings.env is Environment.DEV:
        app.include_router(dev.router)
    return app


def create_served_app() -> FastAPI:
    """The app ``dunwell api`` serves: its start-up heap is frozen (``dunwell.heap``)."""
    return create_app(freeze_heap=True)
