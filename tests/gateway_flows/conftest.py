"""Gateway flows end to end: the API served by uvicorn on a free port (signed webhooks
from localstripe reach it over HTTP), the Temporal dev server, workers that tests start
and stop themselves, PostgreSQL, localstripe.

"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
import uvicorn
from sqlalchemy import Engine
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.billing import BillingActivities
from activities.dunning import DunningActivities
from activities.stripe_gateway import StripeGateway
from api.app import create_app
from billing.catalog import load_catalog
from dunwell.settings import Settings
from ledger.compliance import ComplianceLedger
from ledger.db import make_engine
from ledger.invoices import InvoiceStore
from ledger.migrate import upgrade
from ledger.posting import Ledger
from tax import BuiltinTaxEngine
from tests.conftest import create_database, drop_database
from tests.support.localstripe import free_port, running_localstripe
from tests.support.worker import dunwell_worker
from tests.workflows.harness import REGISTRATIONS, profile
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import SubscriptionInput, SubscriptionState

STRIPE_KEY = "sk_test_dunwell_gateway_flows"
WEBHOOK_SECRET = "whsec_gateway_flows"
RELAY_SECRET = "relay-gateway-flows"


# --- the stack -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def flows_db_url() -> Iterator[str]:
    url = create_database("dunwell_flows")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def flows_localstripe() -> Iterator[str]:
    with running_localstripe() as url:
        yield url


@dataclass
class Flows:
    base_url: str
    localstripe: str
    settings: Settings
    client: Client
    engine: Engine
    store: InvoiceStore
    ledger: Ledger
    gateway: StripeGateway
    stripe: stripe.StripeClient

    def billing_activities(self) -> BillingActivities:
        return BillingActivities(
            invoices=self.store,
            tax_engine=BuiltinTaxEngine(seller_country="IE"),
            gateway=self.gateway,
            registrations=REGISTRATIONS,
            catalog=load_catalog(),
            certificates=ComplianceLedger(self.engine),
        )

    def card(self, card_number: str) -> str:
        """A new card's payment method id, attached to nobody yet."""
        card = self.stripe.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": card_number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
            }
        )
        return str(card.id)

    async def customer_with_card(self, card_number: str) -> tuple[str, str]:
        """A localstripe customer and an attached card: (customer id, payment method id)."""
        key = uuid.uuid4().hex
        customer_id = await self.gateway.create_customer(idempotency_key=f"{key}:customer")
        card_id = self.card(card_number)
        await self.gateway.attach_payment_method(
            payment_method_id=card_id, customer_id=customer_id, idempotency_key=f"{key}:attach"
        )
        return customer_id, card_id

    async def subscribe(
        self, card_number: str
    ) -> WorkflowHandle[SubscriptionWorkflow, SubscriptionState]:
        """A monthly subscription starting now on a new customer with this card (its first
        invoice is billed at once)."""
        customer_id, card_id = await self.customer_with_card(card_number)
        subscription_id = f"sub_{uuid.uuid4().hex[:12]}"
        return await self.client.start_workflow(
            SubscriptionWorkflow.run,
            SubscriptionInput(
                subscription_id=subscription_id,
                customer=profile(f"cust_{uuid.uuid4().hex[:10]}"),
                gateway_customer_id=customer_id,
                default_payment_method_id=card_id,
                plan_id="starter-monthly",
                currency="EUR",
                start_at=datetime.now(UTC),
            ),
            id=f"subscription-{subscription_id}",
            task_queue=self.settings.task_queue,
        )

    def worker(self, *, replacing: Sequence[Callable[..., Any]] = ()) -> Worker:
        """A worker without the dunning activities, ``replacing`` in place of the real
        ones of the same name."""
        return dunwell_worker(
            self.client,
            self.settings,
            task_queue=self.settings.task_queue,
            engine=self.engine,
            gateway=self.gateway,
            registrations=REGISTRATIONS,
            without=[DunningActivities],
            replacing=replacing,
        )


@pytest.fixture(scope="session")
async def flows(
    temporal_dev_env: WorkflowEnvironment, flows_db_url: str, flows_localstripe: str
) -> AsyncIterator[Flows]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        env="test",
        database_url=flows_db_url,
        stripe_api_key=STRIPE_KEY,
        stripe_api_base=flows_localstripe,
        stripe_webhook_secret=WEBHOOK_SECRET,
        relay_secret=RELAY_SECRET,
        temporal_address=temporal_dev_env.client.service_client.config.target_host,
        task_queue=f"flows-{uuid.uuid4().hex[:10]}",
        public_base_url=base_url,
    )
    # The server runs its own event loop in a thread; it connects to Temporal itself
    # (a client is bound to the loop that made it).
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="flows-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        await asyncio.sleep(0.05)
    engine = make_engine(flows_db_url)
    gateway = StripeGateway(STRIPE_KEY, flows_localstripe, timeout_seconds=10)
    try:
        yield Flows(
            base_url=base_url,
            localstripe=flows_localstripe,
            settings=settings,
            client=temporal_dev_env.client,
            engine=engine,
            store=InvoiceStore(engine, issuer="dunwell"),
            ledger=Ledger(engine),
            gateway=gateway,
            stripe=stripe.StripeClient(STRIPE_KEY, base_addresses={"api": flows_localstripe}),
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        gateway.close()
        engine.dispose()
