"""``dunwell.client`` against the real API: served by uvicorn on a free port, on the
Temporal dev server with the real workflows, PostgreSQL and localstripe. The sync
client runs in a thread (the worker shares the test's event loop); the async one in
the loop. Every error family is provoked for real where the stack can produce it."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook
from temporalio.testing import WorkflowEnvironment

from dunwell.client import (
    AsyncDunwell,
    AuthenticationError,
    CardDataRefusedError,
    ConflictError,
    CreatedEndpoint,
    Customer,
    Dunwell,
    DunwellConnectionError,
    Endpoint,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    Subscription,
)
from tests.api.conftest import API_KEY, OPS_KEY, build_app, card_token, make_settings
from tests.support.localstripe import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.temporal]

T = TypeVar("T")

ADDRESS = {"country": "DE", "postal_code": "10115", "city": "Berlin", "line1": "Invalidenstr. 1"}


@dataclass(frozen=True)
class Served:
    base_url: str
    localstripe_url: str


def serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"client-api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    return server, thread


@pytest.fixture(scope="module")
async def served(
    api_db_url: str,
    localstripe_url: str,
    api_worker: str,
    temporal_dev_env: WorkflowEnvironment,
) -> AsyncIterator[Served]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        api_db_url,
        localstripe_url,
        task_queue=api_worker,
        public_base_url=base_url,
        # No client handed over: the server's own event loop connects to Temporal.
        temporal_address=temporal_dev_env.client.service_client.config.target_host,
    )
    server, thread = await asyncio.to_thread(serve, build_app(settings), port)
    try:
        yield Served(base_url, localstripe_url)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


@pytest.fixture
def sync_client(served: Served) -> Iterator[Dunwell]:
    with Dunwell(API_KEY, base_url=served.base_url) as client:
        yield client


@pytest.fixture
async def async_client(served: Served) -> AsyncIterator[AsyncDunwell]:
    async with AsyncDunwell(API_KEY, base_url=served.base_url) as client:
        yield client


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def until_status(read: Callable[[], Any], status: str) -> Subscription:
    """The subscription once its workflow reports ``status`` (the first charge or the
    trial's start happens after the create answers)."""
    deadline = time.monotonic() + 30
    while True:
        found: Subscription = await read()
        if found.status == status or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_the_sync_client_runs_a_customer_through(
    sync_client: Dunwell, served: Served
) -> None:
    customer = await in_thread(
        sync_client.create_customer,
        email="ada@example.test",
        name="Ada Lovelace",
        address=ADDRESS,
        timezone="Europe/Berlin",
    )
    assert isinstance(customer, Customer)
    assert customer.address.country == "DE" and customer.timezone == "Europe/Berlin"
    assert customer.created_at.tzinfo is not None
    assert customer.gateway_customer_id is not None
    assert await in_thread(sync_client.get_customer, customer.id) == customer

    token = card_token(served.localstripe_url)
    subscription = await in_thread(
        sync_client.create_subscription,
        customer_id=customer.id,
        plan_id="starter-monthly",
        currency="eur",
        payment_method_id=token,
    )
    assert isinstance(subscription, Subscription)
    assert (subscription.customer_id, subscription.plan_id, subscription.currency) == (
        customer.id,
        "starter-monthly",
        "EUR",
    )
    assert isinstance(subscription.amount, int)

    again = await until_status(
        lambda: in_thread(sync_client.get_subscription, subscription.id), "active"
    )
    assert again.id == subscription.id and again.status == "active" and again.has_access

    access = await in_thread(sync_client.access, subscription.id)
    assert access.has_access and access.reason == "active"
    assert access.subscription_id == subscription.id and access.features["seats"] >= 1

    entitlements = await in_thread(sync_client.entitlements, customer.id)
    assert entitlements.has_access
    assert [s.subscription_id for s in entitlements.subscriptions] == [subscription.id]

    invoices = await in_thread(sync_client.invoices, subscription.id)
    assert len(invoices) == 1
    assert invoices[0].total == invoices[0].amount_paid and invoices[0].status == "paid"

    portal = await in_thread(sync_client.create_portal_session, customer.id)
    assert portal.url.startswith(f"{served.base_url}/portal?session=")
    assert portal.expires_at > datetime.now(UTC)
    assert portal.token not in repr(portal)


async def test_the_async_client_does_the_same(async_client: AsyncDunwell) -> None:
    customer = await async_client.create_customer(
        email="grace@example.test", name="Grace Hopper", address=ADDRESS
    )
    trial = await async_client.create_subscription(
        customer_id=customer.id, plan_id="pro-monthly", currency="EUR", trial=True
    )
    trial = await until_status(lambda: async_client.get_subscription(trial.id), "trialing")
    assert trial.status == "trialing" and trial.has_access
    access = await async_client.access(trial.id)
    assert access.reason == "trialing" and access.features["seats"] == 5
    assert (await async_client.entitlements(customer.id)).features["seats"] == 5
    assert (await async_client.get_subscription(trial.id)).id == trial.id
    assert await async_client.invoices(trial.id) == []
    portal = await async_client.create_portal_session(customer.id)
    assert "session=" in portal.url


async def test_an_idempotency_key_returns_the_first_customer_and_refuses_another_body(
    async_client: AsyncDunwell,
) -> None:
    key = f"signup-{uuid.uuid4().hex}"
    first = await async_client.create_customer(
        email="once@example.test", name="Once", address=ADDRESS, idempotency_key=key
    )
    again = await async_client.create_customer(
        email="once@example.test", name="Once", address=ADDRESS, idempotency_key=key
    )
    assert again.id == first.id
    with pytest.raises(ConflictError) as caught:
        await async_client.create_customer(
            email="other@example.test", name="Other", address=ADDRESS, idempotency_key=key
        )
    assert (caught.value.status, caught.value.code) == (409, "idempotency_key_reused")


async def test_errors_come_back_typed(served: Served, async_client: AsyncDunwell) -> None:
    with pytest.raises(NotFoundError) as missing:
        await async_client.get_customer("cus_nobody")
    assert (missing.value.status, missing.value.code) == (404, "customer_not_found")

    with pytest.raises(InvalidRequestError) as bad:
        await async_client.create_customer(email="not-an-email", name="X", address=ADDRESS)
    assert (bad.value.status, bad.value.code) == (422, "invalid_request")
    assert bad.value.details and any("email" in d["loc"] for d in bad.value.details)

    with pytest.raises(InvalidRequestError) as no_card:
        customer = await async_client.create_customer(
            email="nocard@example.test", name="No Card", address=ADDRESS
        )
        await async_client.create_subscription(
            customer_id=customer.id, plan_id="starter-monthly", currency="EUR"
        )
    assert no_card.value.code == "payment_method_required"

    with pytest.raises(CardDataRefusedError) as card:
        await async_client.create_customer(
            email="pan@example.test", name="4242 4242 4242 4242", address=ADDRESS
        )
    assert (card.value.status, card.value.code) == (400, "card_data_refused")

    async with AsyncDunwell("not-a-key", base_url=served.base_url) as wrong:
        with pytest.raises(AuthenticationError) as unauthenticated:
            await wrong.get_customer("cus_nobody")
    assert (unauthenticated.value.status, unauthenticated.value.code) == (401, "invalid_api_key")

    async with AsyncDunwell(OPS_KEY, base_url=served.base_url) as ops:
        with pytest.raises(PermissionDeniedError) as denied:
            await ops.create_portal_session("cus_nobody")
    assert (denied.value.status, denied.value.code) == (403, "server_key_required")


async def test_unreachable_temporal_is_a_retryable_unavailable(
    offline_settings: Any,
) -> None:
    app = build_app(offline_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            client = AsyncDunwell(API_KEY, base_url="http://dunwell.test", http_client=http)
            customer = await client.create_customer(
                email="down@example.test", name="Down", address=ADDRESS
            )
            with pytest.raises(ServiceUnavailableError) as caught:
                await client.create_subscription(
                    customer_id=customer.id, plan_id="pro-monthly", currency="EUR", trial=True
                )
    assert (caught.value.status, caught.value.code) == (503, "temporal_unavailable")
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


async def test_too_many_requests_say_when_to_retry(api_db_url: str, localstripe_url: str) -> None:
    settings = make_settings(api_db_url, localstripe_url, rate_limit_server="2/minute")
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            client = AsyncDunwell(API_KEY, base_url="http://dunwell.test", http_client=http)
            for _ in range(2):
                with pytest.raises(NotFoundError):
                    await client.get_customer("cus_nobody")
            with pytest.raises(RateLimitedError) as caught:
                await client.get_customer("cus_nobody")
    assert (caught.value.status, caught.value.code) == (429, "rate_limited")
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 60


async def test_a_server_that_is_not_there_is_a_connection_error() -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    async with AsyncDunwell(API_KEY, base_url=base_url) as client:
        with pytest.raises(DunwellConnectionError) as caught:
            await client.get_customer("cus_1")
    assert caught.value.status is None and caught.value.code == "connection_error"
    with Dunwell(API_KEY, base_url=base_url) as sync_client:
        with pytest.raises(DunwellConnectionError):
            await in_thread(sync_client.get_customer, "cus_1")


# --- the README's snippet ------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec_" + base64.b64encode(b"readme-endpoint-secret-0123456789").decode()


def snippet() -> str:
    text = README.read_text()
    section = text.split("## Using Dunwell from your backend", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README's client section has no python block"
    return found.group(1)


def test_the_snippet_is_short() -> None:
    lines = [line for line in snippet().splitlines() if line.strip()]
    assert len(lines) <= 20


async def test_the_readme_snippet_runs_as_written(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DUNWELL_URL", served.base_url)
    monkeypatch.setenv("DUNWELL_API_KEY", API_KEY)
    monkeypatch.setenv("DUNWELL_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, Any] = {"__name__": "readme"}
    # Sync client: run it off the loop, where the worker runs.
    await asyncio.to_thread(exec, compile(snippet(), str(README), "exec"), namespace)

    customer, subscription, portal = (
        namespace["customer"],
        namespace["subscription"],
        namespace["portal"],
    )
    assert isinstance(customer, Customer) and customer.address.country == "IE"
    assert subscription.customer_id == customer.id and subscription.plan_id == "pro-monthly"
    assert portal.url.startswith(f"{served.base_url}/portal?session=")
    assert namespace["access"].subscription_id == subscription.id
    assert isinstance(namespace["features"], dict)
    # What the snippet set up is what it says: a trial with Pro's features.
    async with AsyncDunwell(API_KEY, base_url=served.base_url) as client:
        trial = await until_status(lambda: client.get_subscription(subscription.id), "trialing")
        assert trial.status == "trialing"
        assert (await client.entitlements(customer.id)).features["seats"] == 5

    body = json.dumps(
        {
            "id": "evt_1",
            "type": "subscription.updated",
            "created": "2026-12-08T01:00:00Z",
            "data": {"subscription_id": subscription.id},
        }
    ).encode()
    at = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg_1", at, body),
    }
    capsys.readouterr()
    namespace["on_dunwell_event"](body, headers)
    assert capsys.readouterr().out.startswith("subscription.updated")


# --- endpoints that receive events ---------------------------------------------------

ENDPOINT_URL = "http://127.0.0.1:8765/hooks"


@pytest.fixture
async def inproc_client(offline_settings: object) -> AsyncIterator[AsyncDunwell]:
    app = build_app(offline_settings)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            yield AsyncDunwell(API_KEY, base_url="http://dunwell.test", http_client=http)


async def test_register_list_read_rotate_disable_enable(inproc_client: AsyncDunwell) -> None:
    created = await inproc_client.create_endpoint(
        url=ENDPOINT_URL, event_types=["invoice.paid", "access.revoked"], description="crm"
    )
    assert isinstance(created, CreatedEndpoint)
    assert created.secret.startswith("whsec_") and created.secret not in repr(created)
    assert (created.status, created.event_types) == ("enabled", ["invoice.paid", "access.revoked"])
    shown = Endpoint.model_validate(created.model_dump(exclude={"secret"}))
    assert shown in await inproc_client.list_endpoints()
    assert await inproc_client.get_endpoint(created.id) == shown

    rotated = await inproc_client.rotate_endpoint_secret(created.id, overlap_seconds=60)
    assert rotated.secret.startswith("whsec_") and rotated.secret != created.secret
    assert rotated.previous_secrets_expire_at > datetime.now(UTC)

    disabled = await inproc_client.disable_endpoint(created.id, reason="maintenance")
    assert (disabled.status, disabled.status_reason) == ("disabled", "maintenance")
    assert (await inproc_client.enable_endpoint(created.id)).status == "enabled"


async def test_refusals_are_typed_and_change_nothing(inproc_client: AsyncDunwell) -> None:
    before = await inproc_client.list_endpoints()
    with pytest.raises(InvalidRequestError) as unknown_type:
        await inproc_client.create_endpoint(url=ENDPOINT_URL, event_types=["invoice.exploded"])
    assert (unknown_type.value.status, unknown_type.value.code) == (422, "unknown_event_type")
    with pytest.raises(InvalidRequestError) as bad_url:
        await inproc_client.create_endpoint(
            url="ftp://example.test/x", event_types=["invoice.paid"]
        )
    assert bad_url.value.code == "invalid_url"
    with pytest.raises(NotFoundError) as missing:
        await inproc_client.disable_endpoint("ep_nothing")
    assert (missing.value.status, missing.value.code) == (404, "endpoint_not_found")
    assert await inproc_client.list_endpoints() == before


async def test_the_sync_client_over_http_and_an_ops_key_reads_only(served: Served) -> None:
    def run() -> tuple[CreatedEndpoint, list[Endpoint]]:
        with Dunwell(API_KEY, base_url=served.base_url) as sync_client:
            made = sync_client.create_endpoint(
                url=ENDPOINT_URL, event_types=["subscription.updated"]
            )
            return made, sync_client.list_endpoints()

    made, listed = await asyncio.to_thread(run)
    assert made.id in [e.id for e in listed]
    async with AsyncDunwell(OPS_KEY, base_url=served.base_url) as ops:
        assert (await ops.get_endpoint(made.id)).id == made.id
        with pytest.raises(PermissionDeniedError) as denied:
            await ops.disable_endpoint(made.id)
    assert denied.value.code == "server_key_required"
