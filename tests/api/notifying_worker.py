"""A worker with the activities a payment that needs 3-D Secure goes through: the billing
activities and the dunning ones, whose ``notify`` sends the "action required" notice to
an SMTP sink (as ``worker.py`` wires them in a deployment).

The shared ``api_worker`` (tests/api/conftest.py) and the e2e stack run the billing
activities only; there the workflow's notice watcher, which holds the workflow's lock
while it sends, would retry the unregistered ``notify`` forever and every portal update
would wait behind it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from activities.billing import BillingActivities
from activities.dunning import DunningActivities
from activities.notifications import Notifier
from activities.stripe_gateway import StripeGateway
from billing.catalog import load_catalog
from dunwell.smtp_sink import SmtpSink
from ledger.db import make_engine
from ledger.invoices import InvoiceStore
from tax import BuiltinTaxEngine
from tests.api.conftest import REGISTRATIONS, STRIPE_KEY
from tests.support.localstripe import free_port
from workflows import WORKFLOWS


@asynccontextmanager
async def notifying_worker(
    client: Client,
    *,
    db_url: str,
    localstripe_url: str,
    mail_dir: Path,
    public_base_url: str = "http://portal.test",
    prefix: str = "pay",
) -> AsyncIterator[str]:
    """Run the worker on a fresh task queue; yields the queue's name."""
    engine = make_engine(db_url)
    gateway = StripeGateway(STRIPE_KEY, localstripe_url, timeout_seconds=10)
    store = InvoiceStore(engine, issuer="dunwell")
    billing = BillingActivities(
        invoices=store,
        tax_engine=BuiltinTaxEngine(seller_country="IE"),
        gateway=gateway,
        registrations=REGISTRATIONS,
        catalog=load_catalog(),
    )
    sink = SmtpSink(mail_dir, "127.0.0.1", free_port())
    sink.start()
    notifier = Notifier(
        engine,
        smtp_host=sink.host,
        smtp_port=sink.port,
        mail_from="billing@dunwell.example.test",
        public_base_url=public_base_url,
    )
    dunning = DunningActivities(gateway=gateway, notifier=notifier, invoices=store)
    task_queue = f"{prefix}-{uuid.uuid4().hex[:10]}"
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=list(WORKFLOWS),
            activities=[*billing.all(), *dunning.all()],
        ):
            yield task_queue
    finally:
        sink.stop()
        gateway.close()
        engine.dispose()
