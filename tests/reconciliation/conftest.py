"""Reconciliation workflow harness: a Temporal server, a worker with the real activities
(ledger on PostgreSQL, settlement read from the simulator beside localstripe), and
localstripe charges recorded as ledger payments the way renewals record them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stripe
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.stripe_gateway import StripeGateway
from billing.gateway import ChargeSucceeded
from billing.money import Money
from dunwell.settings import Settings
from ledger.db import make_engine
from ledger.invoices import DraftLine, InvoiceStore
from ledger.migrate import upgrade
from ledger.posting import Ledger
from tests.conftest import create_database, drop_database
from tests.invoices.conftest import issue
from tests.support.localstripe import reset, running_localstripe
from tests.support.settlement_sim import call, running_settlement_sim
from tests.support.temporal import start_time_skipping
from tests.support.worker import dunwell_worker
from workflows import WORKFLOWS

API_KEY = "sk_test_dunwell_recon"
HISTORIES = Path(__file__).parent / "histories"
RECORD_ENV = "DUNWELL_RECORD_HISTORIES"


@pytest.fixture(scope="session")
def recon_engine() -> Iterator[Engine]:
    url = create_database("dunwell_recon")
    try:
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def recon_localstripe() -> Iterator[str]:
    with running_localstripe() as url:
        yield url


@pytest.fixture
def sim(recon_localstripe: str) -> Iterator[str]:
    reset(recon_localstripe)
    with running_settlement_sim(recon_localstripe, config={"available_after_seconds": 0}) as url:
        yield url


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Recon:
    client: Client
    task_queue: str
    engine: Engine
    sim: str
    gateway: StripeGateway
    stripe: stripe.StripeClient
    ledger: Ledger
    invoices: InvoiceStore
    customer: str = ""
    pm: str = ""
    invoice_id: str = ""
    charges: list[ChargeSucceeded] = field(default_factory=list)

    async def charge(
        self, amount: int, currency: str = "EUR", *, record: bool = True
    ) -> ChargeSucceeded:
        """A real charge at localstripe, recorded as a payment of the harness's invoice."""
        key = f"recon-{uuid.uuid4().hex[:12]}"
        if not self.customer:
            self.customer = await self.gateway.create_customer(idempotency_key=f"{key}:c")
            pm = self.stripe.v1.payment_methods.create(
                params={
                    "type": "card",
                    "card": {
                        "number": "4242424242424242",
                        "exp_month": 12,
                        "exp_year": 2031,
                        "cvc": "123",
                    },
                }
            )
            self.pm = pm.id
            await self.gateway.attach_payment_method(
                payment_method_id=pm.id, customer_id=self.customer, idempotency_key=f"{key}:a"
            )
        outcome = await self.gateway.charge_off_session(
            customer_id=self.customer,
            payment_method_id=self.pm,
            amount=Money(amount, currency),
            idempotency_key=key,
            metadata={"invoice_id": key},
        )
        assert isinstance(outcome, ChargeSucceeded)
        if record:
            invoice = issue(self.invoices, [DraftLine("a", "Plan", amount)], currency=currency)
            self.invoices.mark_paid(
                invoice.id,
                payment_ref=outcome.payment_intent_id,
                amount=amount,
                at=invoice.finalized_at or invoice.created_at,
            )
        self.charges.append(outcome)
        return outcome

    def tick(self, now: int) -> dict[str, Any]:
        result: dict[str, Any] = call(self.sim, "POST", "/_sim/tick", {"now": now})
        return result

    def balance(self, code: str) -> int:
        try:
            return self.ledger.balance(code).amount
        except Exception:  # not created yet
            return 0


async def recon_harness(
    env: WorkflowEnvironment, engine: Engine, sim: str, localstripe: str
) -> AsyncIterator[Recon]:
    gateway = StripeGateway(API_KEY, localstripe, timeout_seconds=10)
    settings = Settings(
        env="test",
        database_url=engine.url.render_as_string(hide_password=False),
        stripe_api_key=API_KEY,
        stripe_api_base=localstripe,
        settlement_api_base=sim,
    )
    task_queue = f"recon-{uuid.uuid4().hex[:10]}"
    worker = dunwell_worker(
        env.client,
        settings,
        task_queue=task_queue,
        engine=engine,
        gateway=gateway,
        workflows=WORKFLOWS,
    )
    async with worker:
        yield Recon(
            client=env.client,
            task_queue=task_queue,
            engine=engine,
            sim=sim,
            gateway=gateway,
            stripe=stripe.StripeClient(API_KEY, base_addresses={"api": localstripe}),
            ledger=Ledger(engine),
            invoices=InvoiceStore(engine, issuer="dunwell"),
        )
    gateway.close()


@pytest.fixture
async def recon(
    time_env: WorkflowEnvironment, recon_engine: Engine, sim: str, recon_localstripe: str
) -> AsyncIterator[Recon]:
    async for harness in recon_harness(time_env, recon_engine, sim, recon_localstripe):
        yield harness
