"""Ops list the workflows alerted of a gateway outage, through the API and the CLI.

The alert is the ``DunwellGatewayAlert`` search attribute a subscription or dunning run
sets while its charge waits out an outage (tests/workflows/test_subscription_outage.py
and tests/dunning_workflow/test_dunning_wf_outage.py drive that); here runs carry it
from their start, on a queue no worker polls, so the listing is checked on the dev
server's real visibility store.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from dunwell.settings import PLACEHOLDER_OPS_API_KEY, Settings
from workflows import search_attributes as sa

AUTH = {"Authorization": f"Bearer {PLACEHOLDER_OPS_API_KEY}"}


def _attributes(**values: str) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[str]] = []
    if "status" in values:
        pairs.append(SearchAttributePair(sa.STATUS, values["status"]))
    if "alert" in values:
        pairs.append(SearchAttributePair(sa.GATEWAY_ALERT, values["alert"]))
    return TypedSearchAttributes(pairs)


@pytest.fixture
async def alerted(temporal_dev_env: WorkflowEnvironment) -> AsyncIterator[dict[str, str]]:
    """Subscription runs alerted, not alerted, alerted but closed, and an alerted dunning
    run. Yields the test's own workflow ids by role."""
    client = temporal_dev_env.client
    tag = uuid.uuid4().hex[:8]
    queue = f"unpolled-{tag}"
    ids = {
        "alerted": f"subscription-sub_alerted_{tag}",
        "quiet": f"subscription-sub_quiet_{tag}",
        "closed": f"subscription-sub_closed_{tag}",
        "dunning": f"dunning-inv_alerted_{tag}",
    }
    runs = {
        "alerted": ("SubscriptionWorkflow", {"status": "active", "alert": "authentication"}),
        "quiet": ("SubscriptionWorkflow", {"status": "active"}),
        "closed": ("SubscriptionWorkflow", {"status": "active", "alert": "connection"}),
        "dunning": ("DunningWorkflow", {"alert": "rate_limit"}),
    }
    for role, (workflow_type, values) in runs.items():
        await client.start_workflow(
            workflow_type,
            id=ids[role],
            task_queue=queue,
            search_attributes=_attributes(**values),
        )
    await client.get_workflow_handle(ids["closed"]).terminate("closed before the listing")
    try:
        yield ids
    finally:
        for role in ("alerted", "quiet", "dunning"):
            await client.get_workflow_handle(ids[role]).terminate("test finished")


def _ours(alerts: list[dict[str, object]], ids: dict[str, str]) -> list[dict[str, object]]:
    return [a for a in alerts if a["workflow_id"] in ids.values()]


async def _listed(fetch: object, ids: dict[str, str]) -> list[dict[str, object]]:
    """Visibility is eventually consistent: ask until both alerted runs show."""
    assert callable(fetch)
    for _ in range(100):
        found = _ours(await fetch(), ids)
        if len(found) >= 2:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("the alerted subscription never showed")


async def test_ops_api_lists_running_alerted_subscriptions_only(
    tmp_path: Path, temporal_dev_env: WorkflowEnvironment, alerted: dict[str, str]
) -> None:
    settings = Settings(env="test", database_url=f"sqlite+pysqlite:///{tmp_path}/api.db")
    app = create_app(settings, temporal_client=temporal_dev_env.client)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):

        async def fetch() -> list[dict[str, object]]:
            response = await http.get("/v1/ops/gateway-alerts", headers=AUTH)
            assert response.status_code == 200, response.text
            alerts: list[dict[str, object]] = response.json()["alerts"]
            return alerts

        found = await _listed(fetch, alerted)
        assert found == [
            {
                "workflow_id": alerted["dunning"],
                "workflow_type": "DunningWorkflow",
                "failure": "rate_limit",
                "subscription_id": None,
                "invoice_id": alerted["dunning"].removeprefix("dunning-"),
                "status": None,
            },
            {
                "workflow_id": alerted["alerted"],
                "workflow_type": "SubscriptionWorkflow",
                "failure": "authentication",
                "subscription_id": alerted["alerted"].removeprefix("subscription-"),
                "invoice_id": None,
                "status": "active",
            },
        ]
        anonymous = await http.get("/v1/ops/gateway-alerts")
        assert anonymous.status_code == 401
        too_many = await http.get("/v1/ops/gateway-alerts", params={"limit": 0}, headers=AUTH)
        assert too_many.status_code == 422


async def test_ops_api_answers_503_when_temporal_is_down(tmp_path: Path) -> None:
    settings = Settings(
        env="test",
        database_url=f"sqlite+pysqlite:///{tmp_path}/api.db",
        temporal_address="127.0.0.1:1",
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        response = await http.get("/v1/ops/gateway-alerts", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "temporal_unavailable"


def _cli(*args: str, temporal: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DUNWELL_TEMPORAL_ADDRESS": temporal, "DUNWELL_ENV": "test"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "dunwell"), "gateway", "alerts", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_cli_lists_alerted_subscriptions(
    temporal_dev_env: WorkflowEnvironment, alerted: dict[str, str]
) -> None:
    target = temporal_dev_env.client.service_client.config.target_host

    async def fetch() -> list[dict[str, object]]:
        done = await asyncio.to_thread(_cli, "--json", temporal=target)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line]

    found = await _listed(fetch, alerted)
    assert [(a["workflow_id"], a["failure"]) for a in found] == [
        (alerted["dunning"], "rate_limit"),
        (alerted["alerted"], "authentication"),
    ]
    table = await asyncio.to_thread(_cli, temporal=target)
    assert table.returncode == 0
    assert alerted["alerted"] in table.stdout and alerted["dunning"] in table.stdout
    assert alerted["quiet"] not in table.stdout and alerted["closed"] not in table.stdout


def test_cli_fails_when_temporal_is_down() -> None:
    done = _cli(temporal="127.0.0.1:1")
    assert done.returncode == 1
    assert "temporal" in done.stderr
