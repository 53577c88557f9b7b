"""Webhook intake peers: its own PostgreSQL database, the Temporal dev server, the API app."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import string
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from billing.events import GatewayEvent
from dunwell.settings import Settings
from ledger.db import make_engine
from ledger.migrate import upgrade
from stores.tables import processed_events
from tests.conftest import create_database, drop_database

WEBHOOK_SECRET = "whsec_webhooks_test"
RELAY_SECRET = "relay-webhooks-test"
API_KEY = "dw_webhooks_test_key"
OPS_API_KEY = "dw_webhooks_test_ops_key"


@pytest.fixture(scope="session")
def events_db_url() -> Iterator[str]:
    """A database of its own, so listings of parked events see only these tests' rows."""
    url = create_database("dunwell_webhooks")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def settings(events_db_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=events_db_url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        relay_secret=RELAY_SECRET,
        api_key=API_KEY,
        ops_api_key=OPS_API_KEY,
        task_queue="dunwell-webhooks-test",
        # The card-data walk sends every body to every route, more requests than an
        # anonymous minute allows; the limits have their own tests (tests/api).
        rate_limit_anonymous="100000/minute",
    )


def build_app(settings: Settings, temporal_client: Client | None) -> FastAPI:
    """The API app exactly as ``api/app.py`` wires it."""
    return create_app(settings, temporal_client=temporal_client)


def api_routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    """(path, methods) of every API route, through included routers at any depth."""
    found: list[tuple[str, set[str]]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)  # FastAPI's included router
            if inner is not None:
                walk(inner.routes, prefix + getattr(route.include_context, "prefix", ""))
            elif isinstance(route, APIRoute):
                found.append((prefix + route.path, set(route.methods)))

    walk(list(app.routes), "")
    return found


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dunwell.test") as http:
            yield http


@pytest.fixture
def app(settings: Settings, temporal_dev_env: WorkflowEnvironment) -> FastAPI:
    return build_app(settings, temporal_dev_env.client)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as http:
        yield http


# --- payloads and signatures ----------------------------------------------------------


BASE62 = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """A Stripe-like id: base62, so it never holds a digit run the card guard would flag
    (a hex uuid has a 13-digit Luhn-valid run about once in a thousand)."""
    return f"{prefix}_{''.join(secrets.choice(BASE62) for _ in range(24))}"


def stripe_event(
    event_type: str = "invoice.paid",
    *,
    subscription_id: str | None = None,
    event_id: str | None = None,
    obj: dict[str, Any] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A Stripe-shaped event body (the fields Stripe sends for API version 2024-06-20)."""
    if obj is None:
        obj = {
            "id": new_id("in"),
            "object": "invoice",
            "amount_due": 2000,
            "currency": "eur",
            "status": "paid",
            "metadata": {"dunwell_subscription_id": subscription_id} if subscription_id else {},
        }
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": "2024-06-20",
        "created": created or int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def hmac_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """``t=...,v1=...``: HMAC-SHA256 of ``f"{t}.{body}"`` (Stripe's scheme, also the relay's)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


async def post_stripe(
    http: httpx.AsyncClient,
    event: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    body = json.dumps(event).encode()
    return await http.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "Stripe-Signature": hmac_header(body, secret, timestamp),
            "Content-Type": "application/json",
        },
    )


async def post_relay(
    http: httpx.AsyncClient,
    event: dict[str, Any],
    *,
    secret: str = RELAY_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    body = json.dumps(event).encode()
    return await http.post(
        "/v1/events",
        content=body,
        headers={
            "Dunwell-Signature": hmac_header(body, secret, timestamp),
            "Content-Type": "application/json",
        },
    )


# --- what happened --------------------------------------------------------------------


async def delivered_row(url: str, event_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The event's row once marked ``delivered`` (the mark follows the acknowledgement)."""
    deadline = time.monotonic() + timeout
    while True:
        row = processed_row(url, event_id)
        if row is not None and row["status"] == "delivered":
            return row
        assert time.monotonic() < deadline, f"{event_id} not marked delivered: {row}"
        await asyncio.sleep(0.02)


def processed_row(url: str, event_id: str) -> dict[str, Any] | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(processed_events).where(processed_events.c.event_id == event_id)
            ).mappings()
            found = row.one_or_none()
            return dict(found) if found is not None else None
    finally:
        engine.dispose()


def count_rows(url: str, event_id: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return len(
                conn.execute(
                    select(processed_events.c.event_id).where(
                        processed_events.c.event_id == event_id
                    )
                ).all()
            )
    finally:
        engine.dispose()


async def signalled_events(client: Client, subscription_id: str) -> list[GatewayEvent]:
    """The ``gateway_event`` signals in ``subscription-<id>``'s history, decoded."""
    handle = client.get_workflow_handle(f"subscription-{subscription_id}")
    history = await handle.fetch_history()
    found: list[GatewayEvent] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attrs = event.workflow_execution_signaled_event_attributes
        assert attrs.signal_name == "gateway_event"
        (decoded,) = await client.data_converter.decode(attrs.input.payloads, [GatewayEvent])
        found.append(decoded)
    return found
