"""Ops resolve a failed plan change's manual review through the API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

# This module also defines a workflow, so its imports pass through the sandbox.
with workflow.unsafe.imports_passed_through():
    import httpx

    from api.app import create_app
    from dunwell.settings import PLACEHOLDER_OPS_API_KEY, Settings
    from ledger.migrate import upgrade
    from tests.support.audit import audit_rows
    from tests.support.worker import dunwell_worker
    from workflows.manual_review import ManualReviewWorkflow, ReviewInput, ReviewResolution

AUTH = {"Authorization": f"Bearer {PLACEHOLDER_OPS_API_KEY}"}


@workflow.defn(name="ReviewParentProbe")
class ReviewParentProbe:
    """Stands at ``subscription-<id>`` to receive the review's resolution signal."""

    def __init__(self) -> None:
        self.resolutions: list[ReviewResolution] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: bool(self.resolutions))

    @workflow.signal(name="review_resolved")
    def review_resolved(self, resolution: ReviewResolution) -> None:
        self.resolutions.append(resolution)

    @workflow.query
    def received(self) -> list[str]:
        return [r.action for r in self.resolutions]


def review_input(subscription_id: str, invoice_id: str) -> ReviewInput:
    return ReviewInput(
        subscription_id=subscription_id,
        reason="proration_charge_failed",
        invoice_id=invoice_id,
        credit_note_id=f"cn_{invoice_id}",
        change_id="change-1",
        from_plan="starter-monthly",
        to_plan="pro-monthly",
        amount=1234,
        currency="EUR",
        decline_family="soft",
        decline_reason="insufficient_funds",
        opened_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


@pytest.fixture
async def review(
    tmp_path: Path, temporal_dev_env: WorkflowEnvironment
) -> AsyncIterator[tuple[str, str]]:
    client = temporal_dev_env.client
    queue = f"review-{uuid.uuid4().hex[:8]}"
    subscription_id, invoice_id = f"sub_{uuid.uuid4().hex[:8]}", f"inv_{uuid.uuid4().hex[:8]}"
    # ManualReviewWorkflow calls no activity; the worker's are wired to this unused database.
    settings = Settings(env="test", database_url=f"sqlite+pysqlite:///{tmp_path}/worker.db")
    async with dunwell_worker(
        client, settings, task_queue=queue, workflows=[ManualReviewWorkflow, ReviewParentProbe]
    ):
        await client.start_workflow(
            ReviewParentProbe.run, id=f"subscription-{subscription_id}", task_queue=queue
        )
        await client.start_workflow(
            ManualReviewWorkflow.run,
            review_input(subscription_id, invoice_id),
            id=f"review-{invoice_id}",
            task_queue=queue,
        )
        yield subscription_id, invoice_id


def api(
    tmp_path: Path, env: WorkflowEnvironment | None, temporal: str = "127.0.0.1:1"
) -> httpx.AsyncClient:
    url = f"sqlite+pysqlite:///{tmp_path}/api.db"
    upgrade(url)  # the audit log
    settings = Settings(env="test", database_url=url, temporal_address=temporal)
    app = create_app(settings, temporal_client=env.client if env else None)
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://api")
    client.app = app  # type: ignore[attr-defined]
    return client


@pytest.fixture
async def http(
    tmp_path: Path, temporal_dev_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    client = api(tmp_path, temporal_dev_env)
    async with client.app.router.lifespan_context(client.app), client:  # type: ignore[attr-defined]
        yield client


async def test_write_off_resolves_once_and_tells_the_subscription(
    http: httpx.AsyncClient, review: tuple[str, str], temporal_dev_env: WorkflowEnvironment
) -> None:
    subscription_id, invoice_id = review
    shown = await http.get(f"/v1/ops/reviews/{invoice_id}", headers=AUTH)
    assert shown.status_code == 200, shown.text
    assert shown.json()["resolution"] is None and shown.json()["to_plan"] == "pro-monthly"

    done = await http.post(
        f"/v1/ops/reviews/{invoice_id}/write-off", json={"note": "customer declined"}, headers=AUTH
    )
    assert done.status_code == 200, done.text
    assert done.json()["resolution"] == "write_off"

    again = await http.post(f"/v1/ops/reviews/{invoice_id}/retry", headers=AUTH)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "review_already_resolved"

    written_off, retried = audit_rows(http.app.state.settings.database_url)  # type: ignore[attr-defined]
    assert (written_off.actor, written_off.action, written_off.target, written_off.outcome) == (
        "ops",
        "review.write_off",
        f"invoice:{invoice_id}",
        "done",
    )
    assert written_off.after["request"] == {"note": "customer declined"}
    assert written_off.after["state"]["resolution"] == "write_off"
    assert (retried.action, retried.outcome) == ("review.retry", "review_already_resolved")

    parent = temporal_dev_env.client.get_workflow_handle(f"subscription-{subscription_id}")
    await parent.result()
    assert await parent.query(ReviewParentProbe.received) == ["write_off"]


async def test_accept_takes_only_a_gateway_token(
    http: httpx.AsyncClient, review: tuple[str, str]
) -> None:
    _, invoice_id = review
    refused = await http.post(
        f"/v1/ops/reviews/{invoice_id}/accept-payment-method",
        json={"payment_method_id": "card_123"},
        headers=AUTH,
    )
    assert refused.status_code == 422
    still_open = await http.get(f"/v1/ops/reviews/{invoice_id}", headers=AUTH)
    assert still_open.json()["resolution"] is None
    accepted = await http.post(
        f"/v1/ops/reviews/{invoice_id}/accept-payment-method",
        json={"payment_method_id": "pm_new_card"},
        headers=AUTH,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["payment_method_id"] == "pm_new_card"


async def test_unknown_review_is_404_and_the_key_is_required(http: httpx.AsyncClient) -> None:
    missing = await http.get("/v1/ops/reviews/inv_nope", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (await http.post("/v1/ops/reviews/inv_nope/retry")).status_code == 401


async def test_temporal_unreachable_is_503(tmp_path: Path) -> None:
    client = api(tmp_path, None)
    async with client.app.router.lifespan_context(client.app), client:  # type: ignore[attr-defined]
        response = await client.post("/v1/ops/reviews/inv_x/retry", headers=AUTH)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
