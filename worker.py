"""Builds clients and activity instances, and runs the Temporal worker.

Wiring happens here and in the API lifespan only.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.ledger import LedgerActivities
from dunwell import temporal
from dunwell.logs import install_redaction
from dunwell.settings import Settings
from ledger.db import make_engine
from ledger.posting import Ledger

WORKFLOWS: Sequence[type] = ()


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    ledger = Ledger(make_engine(settings.database_url))
    ledger_activities = LedgerActivities(ledger)
    return [ledger_activities.post_entries]


def build_worker(client: Client, settings: Settings, *, task_queue: str | None = None) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(settings),
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set, or until SIGINT/SIGTERM."""
    install_redaction()
    client = await temporal.connect(settings)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with build_worker(client, settings):
        await stop.wait()
