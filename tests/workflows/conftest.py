"""Workflow test harness: the time-skipping server, a real worker per test (fresh task
queue) with the real activities: the invoice store on a PostgreSQL database, the
built-in tax engine, the Stripe adapter against localstripe, and notices to an SMTP sink."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

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


@asynccontextmanager
async def running_billing(
    env: WorkflowEnvironment,
    engine: Engine,
    localstripe_url: str,
    mail_sink: SmtpSink,
    *,
    gateway: StripeGateway,
    worker_gateway: StripeGateway | None = None,
    worker_api_base: str | None = None,
    store: InvoiceStore | None = None,
    replacing: Sequence[Callable[..., Any]] = (),
) -> AsyncIterator[Billing]:
    """A worker on a fresh task queue and the ``Billing`` harness that drives it.

    ``gateway`` is the test's own (customers, cards); the worker uses ``worker_gateway``
    and ``worker_api_base`` when given (a proxy in front of localstripe), and
    ``replacing`` swaps activities by name.
    """
    settings = Settings(
        env="test",
        database_url=engine.url.render_as_string(hide_password=False),
        stripe_api_key=API_KEY,
        stripe_api_base=worker_api_base or localstripe_url,
        smtp_host=mail_sink.host,
        smtp_port=mail_sink.port,
        mail_from="billing@dunwell.example.test",
        public_base_url="https://billing.example.test",
    )
    task_queue = f"wf-{uuid.uuid4().hex[:10]}"
    worker = dunwell_worker(
        env.client,
        settings,
        task_queue=task_queue,
        engine=engine,
        gateway=worker_gateway or gateway,
        registrations=REGISTRATIONS,
        replacing=list(replacing),
    )
    async with worker:
        harness = Billing(
            env=env,
            client=env.client,
            task_queue=task_queue,
            store=store or InvoiceStore(engine, issuer="dunwell"),
            ledger=Ledger(engine),
            stripe=stripe.StripeClient(API_KEY, base_addresses={"api": localstripe_url}),
            gateway=gateway,
        )
        try:
            yield harness
        finally:
            await harness.terminate_started()


@pytest.fixture
async def billing(
    temporal_time_env: WorkflowEnvironment,
    billing_engine: Engine,
    localstripe_url: str,
    mail_sink: SmtpSink,
) -> AsyncIterator[Billing]:
    reset(localstripe_url)
    gateway = StripeGateway(API_KEY, localstripe_url, timeout_seconds=10)
    async with running_billing(
        temporal_time_env, billing_engine, localstripe_url, mail_sink, gateway=gateway
    ) as harness:
        yield harness
    gateway.close()
