"""Dunning workflow harness: the time-skipping server, a real worker per test (fresh
task queue) running ``DunningWorkflow`` with the real activities: the Stripe adapter
against a scripted recorded-payload server or localstripe, a real SMTP sink on a free
port, and the notifications and invoice stores on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from dunwell.smtp_sink import SmtpSink
from ledger.db import make_engine
from ledger.invoices import InvoiceStore
from ledger.migrate import upgrade
from tests.conftest import create_database, drop_database
from tests.dunning_workflow.harness import Dunning
from tests.dunning_workflow.scripted_stripe import ScriptedStripe, ScriptedStripeServer
from tests.support.localstripe import free_port, running_localstripe
from tests.support.temporal import start_time_skipping


@pytest.fixture
async def temporal_time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test (overrides the session-wide one), so a
    clock one test left waiting cannot stall the tests after it."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def dunning_engine() -> Iterator[Engine]:
    url = create_database("dunwell_dun")
    try:
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def dunning_localstripe() -> Iterator[str]:
    with running_localstripe() as url:
        yield url


@pytest.fixture
def scripted() -> Iterator[ScriptedStripe]:
    with ScriptedStripeServer() as state:
        yield state


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[SmtpSink, Path]]:
    directory = tmp_path / "mail"
    server = SmtpSink(directory, "127.0.0.1", free_port())
    server.start()
    yield server, directory
    server.stop()


@pytest.fixture
async def dunning(
    temporal_time_env: WorkflowEnvironment,
    dunning_engine: Engine,
    scripted: ScriptedStripe,
    sink: tuple[SmtpSink, Path],
) -> AsyncIterator[Dunning]:
    server, directory = sink
    harness = Dunning(
        env=temporal_time_env,
        engine=dunning_engine,
        store=InvoiceStore(dunning_engine, issuer="dunwell"),
        gateway_url=scripted.url,
        scripted=scripted,
        smtp_port=server.port,
        mail_dir=directory,
    )
    async with harness.worker():
        yield harness
    harness.close()
