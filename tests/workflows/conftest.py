"""Workflow test harness: the time-skipping server, a real worker per test (fresh task
queue) with the real activities: the invoice store on a PostgreSQL database, the
built-in tax engine, the Stripe adapter against localstripe, and notices to an SMTP sink."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import stripe
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from activities.stripe_gateway import StripeGateway
from dunwell.settings import Settings
from dunwell.smtp_sink import SmtpSink
from ledger.db import make_engine
from ledger.invoices import InvoiceStore
from ledger.migrate import upgrade
from ledger.posting import Ledger
from tests.conftest import create_database, drop_database
from tests.support.localstripe import free_port, reset, running_localstripe
from tests.support.temporal import start_time_skipping
from tests.support.worker import dunwell_worker
from tests.workflows.harness import API_KEY, REGISTRATIONS, Billing


@pytest.fixture
async def temporal_time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test (overrides the session-wide one): the
    server's shared clock could stall for every later test once one test left it
    waiting, so each test gets its own clock."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def billing_engine() -> Iterator[Engine]:
    url = create_database("dunwell_wf")
    try:
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    with running_localstripe() as url:
        yield url


@pytest.fixture(scope="session")
def mail_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    """The SMTP relay dunning notifications go to (one folder for the session)."""
    server = SmtpSink(tmp_path_factory.mktemp("mail"), "127.0.0.1", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def billing(
    temporal_time_env: WorkflowEnvironment,
    billing_engine: Engine,
    localstripe_url: str,
    mail_sink: SmtpSink,
) -> AsyncIterator[Billing]:
    reset(localstripe_url)
    gateway = StripeGateway(API_KEY, localstripe_url, timeout_seconds=10)
    settings = Settings(
        env="test",
        database_url=billing_engine.url.render_as_string(hide_password=False),
        stripe_api_key=API_KEY,
        stripe_api_base=localstripe_url,
        smtp_host=mail_sink.host,
        smtp_port=mail_sink.port,
        mail_from="billing@dunwell.example.test",
        public_base_url="https://billing.example.test",
    )
    task_queue = f"wf-{uuid.uuid4().hex[:10]}"
    worker = dunwell_worker(
        temporal_time_env.client,
        settings,
        task_queue=task_queue,
        engine=billing_engine,
        gateway=gateway,
        registrations=REGISTRATIONS,
    )
    async with worker:
        harness = Billing(
            env=temporal_time_env,
            client=temporal_time_env.client,
            task_queue=task_queue,
            store=InvoiceStore(billing_engine, issuer="dunwell"),
            ledger=Ledger(billing_engine),
            stripe=stripe.StripeClient(API_KEY, base_addresses={"api": localstripe_url}),
            gateway=gateway,
        )
        try:
            yield harness
        finally:
            await harness.terminate_started()
    gateway.close()
