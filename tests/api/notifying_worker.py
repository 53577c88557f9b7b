"""A worker with every activity, as a deployment registers them: a payment that needs
3-D Secure goes through the dunning ones too, whose ``notify`` sends the "action
required" notice to an SMTP sink.

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

from activities.stripe_gateway import StripeGateway
from dunwell.smtp_sink import SmtpSink
from ledger.db import make_engine
from tests.api.conftest import REGISTRATIONS, STRIPE_KEY, make_settings
from tests.support.localstripe import free_port
from tests.support.worker import dunwell_worker


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
    sink = SmtpSink(mail_dir, "127.0.0.1", free_port())
    sink.start()
    settings = make_settings(
        db_url,
        localstripe_url,
        smtp_host=sink.host,
        smtp_port=sink.port,
        mail_from="billing@dunwell.example.test",
        public_base_url=public_base_url,
    )
    task_queue = f"{prefix}-{uuid.uuid4().hex[:10]}"
    try:
        async with dunwell_worker(
            client,
            settings,
            task_queue=task_queue,
            engine=engine,
            gateway=gateway,
            registrations=REGISTRATIONS,
        ):
            yield task_queue
    finally:
        sink.stop()
        gateway.close()
        engine.dispose()
