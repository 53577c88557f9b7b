"""Peers for the server and portal API tests: PostgreSQL, localstripe, Temporal dev server
with a real worker (the real subscription workflow and billing activities)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
import stripe
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.dunning import DunningActivities
from activities.stripe_gateway import StripeGateway
from api.app import create_app
from api.portal_tokens import issue_portal_token
from dunwell.settings import Settings
from ledger.db import make_engine
from ledger.migrate import upgrade
from tax import BuiltinTaxEngine, Registration, TaxType
from tests.conftest import create_database, drop_database
from tests.support.localstripe import running_localstripe
from tests.support.worker import dunwell_worker

API_KEY = "dw_api_test_key"
OPS_KEY = "dw_api_test_ops_key"
STRIPE_KEY = "sk_test_dunwell_api"
SESSION_SECRET = "portal-secret-for-api-tests"
UNREACHABLE_TEMPORAL = "127.0.0.1:1"
VISA_OK = "4242424242424242"
# A seller established in Ireland, registered for the EU One-Stop Shop (as the worker is).
REGISTRATIONS = (Registration("EU", TaxType.VAT, date(2020, 1, 1), None, "EU372000041"),)
AUTH = {"Authorization": f"Bearer {API_KEY}"}
OPS_AUTH = {"Authorization": f"Bearer {OPS_KEY}"}


@pytest.fixture(scope="session")
def api_db_url() -> Iterator[str]:
    url = create_database("dunwell_api")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    with running_localstripe() as url:
        yield url


def make_settings(db_url: str, stripe_base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": db_url,
        "api_key": API_KEY,
        "ops_api_key": OPS_KEY,
        "portal_session_secret": SESSION_SECRET,
        "stripe_api_key": STRIPE_KEY,
        "stripe_api_base": stripe_base,
        "temporal_address": UNREACHABLE_TEMPORAL,
        "task_queue": "dunwell-api-test",
        "public_base_url": "http://portal.test",
    }
    values.update(overrides)
    return Settings(**values)


def build_app(settings: Settings, temporal_client: Client | None = None) -> FastAPI:
    app = create_app(settings, temporal_client=temporal_client)
    app.state.tax_engine = BuiltinTaxEngine(seller_country="IE")
    app.state.tax_registrations = REGISTRATIONS
    return app


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dunwell.test") as http:
            yield http


@pytest.fixture
def offline_settings(api_db_url: str, localstripe_url: str) -> Settings:
    """Temporal unreachable: what works without it, and the 503s."""
    return make_settings(api_db_url, localstripe_url)


@pytest.fixture
async def offline_api(offline_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(build_app(offline_settings)) as http:
        yield http


@pytest.fixture(scope="session")
async def api_worker(
    temporal_dev_env: WorkflowEnvironment, api_db_url: str, localstripe_url: str
) -> AsyncIterator[str]:
    """A worker on the dev server running the real workflows, without the dunning
    activities (no ``notify``; see ``notifying_worker``); yields its task queue."""
    engine = make_engine(api_db_url)
    gateway = StripeGateway(STRIPE_KEY, localstripe_url, timeout_seconds=10)
    task_queue = f"api-{uuid.uuid4().hex[:10]}"
    async with dunwell_worker(
        temporal_dev_env.client,
        make_settings(api_db_url, localstripe_url),
        task_queue=task_queue,
        engine=engine,
        gateway=gateway,
        registrations=REGISTRATIONS,
        without=[DunningActivities],
    ):
        yield task_queue
    gateway.close()
    engine.dispose()


@pytest.fixture
def live_settings(api_db_url: str, localstripe_url: str, api_worker: str) -> Settings:
    return make_settings(api_db_url, localstripe_url, task_queue=api_worker)


@pytest.fixture
async def live_api(
    live_settings: Settings, temporal_dev_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(build_app(live_settings, temporal_dev_env.client)) as http:
        yield http


# --- helpers -----------------------------------------------------------------------------


def customer_body(country: str = "DE", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": "ada@example.test",
        "name": "Ada Lovelace",
        "address": {
            "country": country,
            "postal_code": "10115",
            "city": "Berlin",
            "line1": "Invalidenstr. 1",
        },
        "timezone": "Europe/Berlin",
    }
    body.update(overrides)
    return body


async def create_customer(http: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await http.post("/v1/customers", json=customer_body(**overrides), headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def card_token(localstripe_url: str, number: str = VISA_OK) -> str:
    """A payment method token made the way Stripe.js makes one (card data goes to the
    gateway only)."""
    client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": localstripe_url})
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    return str(pm.id)


def portal_headers(customer_id: str, *, now: datetime | None = None) -> dict[str, str]:
    issued = issue_portal_token(customer_id, secret=SESSION_SECRET, now=now or datetime.now(UTC))
    return {"Authorization": f"Bearer {issued.token}"}


async def until(
    http: httpx.AsyncClient,
    subscription_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Read the subscription through the server API until ``predicate`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await http.get(f"/v1/subscriptions/{subscription_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if predicate(body):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never reached; last: {body}")
        await asyncio.sleep(0.1)
