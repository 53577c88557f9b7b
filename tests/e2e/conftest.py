"""End-to-end peers: the API served by uvicorn on a free port, a worker on the Temporal
dev server, PostgreSQL, localstripe, and headless Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.testing import WorkflowEnvironment

from activities.dunning import DunningActivities
from activities.stripe_gateway import StripeGateway
from ledger.db import make_engine
from ledger.migrate import upgrade
from tests.api.conftest import REGISTRATIONS, STRIPE_KEY, build_app, make_settings
from tests.api.notifying_worker import notifying_worker
from tests.conftest import create_database, drop_database
from tests.support.localstripe import free_port, running_localstripe
from tests.support.worker import dunwell_worker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Recorder:
    """Every request body the API received, as (method, path, body)."""

    seen: list[tuple[str, str, bytes]] = field(default_factory=list)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []

            async def tap() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        self.seen.append((scope["method"], scope["path"], b"".join(chunks)))
                return message

            await app(scope, tap, send)

        return recorded

    def json_bodies(self, path_suffix: str, since: int = 0) -> list[Any]:
        return [
            json.loads(body) for _m, path, body in self.seen[since:] if path.endswith(path_suffix)
        ]


# Screenshots of the portal tests are kept here for people to look at (git-ignored).
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".dunwell" / "screenshots"


@dataclass
class Stack:
    base_url: str
    localstripe_url: str
    recorder: Recorder
    app: FastAPI
    screenshots: Path = SCREENSHOTS

    def __post_init__(self) -> None:
        self.screenshots.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def e2e_db_url() -> Iterator[str]:
    url = create_database("dunwell_e2e")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def e2e_localstripe() -> Iterator[str]:
    with running_localstripe() as url:
        yield url


@asynccontextmanager
async def served_stack(
    temporal_env: WorkflowEnvironment, db_url: str, localstripe_url: str, prefix: str = "e2e"
) -> AsyncIterator[Stack]:
    """The API served by uvicorn on a free port, over a worker on its own task queue."""
    engine = make_engine(db_url)
    gateway = StripeGateway(STRIPE_KEY, localstripe_url, timeout_seconds=10)
    task_queue = f"{prefix}-{uuid.uuid4().hex[:10]}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        db_url,
        localstripe_url,
        task_queue=task_queue,
        public_base_url=base_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
    )
    # No client handed over: the server's own event loop connects to Temporal lazily.
    app = build_app(settings)
    recorder = Recorder()
    server = uvicorn.Server(
        uvicorn.Config(
            recorder.wrap(app), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name=f"{prefix}-uvicorn", daemon=True)
    # No dunning activities, so no ``notify`` (see tests/api/notifying_worker.py).
    async with dunwell_worker(
        temporal_env.client,
        settings,
        task_queue=task_queue,
        engine=engine,
        gateway=gateway,
        registrations=REGISTRATIONS,
        without=[DunningActivities],
    ):
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API server did not start")
            await asyncio.sleep(0.05)
        try:
            yield Stack(base_url, localstripe_url, recorder, app)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    gateway.close()
    engine.dispose()


@pytest.fixture(scope="session")
async def e2e_stack(
    temporal_dev_env: WorkflowEnvironment, e2e_db_url: str, e2e_localstripe: str
) -> AsyncIterator[Stack]:
    async with served_stack(temporal_dev_env, e2e_db_url, e2e_localstripe) as stack:
        yield stack


@pytest.fixture(scope="module")
async def payments_stack(
    temporal_dev_env: WorkflowEnvironment,
    e2e_db_url: str,
    e2e_localstripe: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """The API served by uvicorn, on a worker that also sends notices (the shared e2e
    stack's worker has no ``notify``; see ``tests/api/notifying_worker.py``)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with notifying_worker(
        temporal_dev_env.client,
        db_url=e2e_db_url,
        localstripe_url=e2e_localstripe,
        mail_dir=tmp_path_factory.mktemp("e2e-payment-mail"),
        public_base_url=base_url,
        prefix="e2e-pay",
    ) as task_queue:
        settings = make_settings(
            e2e_db_url,
            e2e_localstripe,
            task_queue=task_queue,
            public_base_url=base_url,
            temporal_address=temporal_dev_env.client.service_client.config.target_host,
        )
        app = build_app(settings)
        recorder = Recorder()
        server = uvicorn.Server(
            uvicorn.Config(
                recorder.wrap(app), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
            )
        )
        thread = threading.Thread(target=server.run, name="e2e-pay-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API server did not start")
            await asyncio.sleep(0.05)
        try:
            yield Stack(base_url, e2e_localstripe, recorder, app)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
