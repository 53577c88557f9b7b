"""After ``dunwell demo``, the SaaS product's receiver has verified signed events:
subscriptions created, access granted, invoices finalized and paid, the plan change,
each once after dedupe by id, in order per subscription."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from billing.outbound import EVENT_TYPES
from dunwell.demo import run_demo
from dunwell.settings import Settings
from tests.api.conftest import AUTH
from tests.e2e.conftest import Stack
from tests.support.receiver import Receiver
from workflows.outbound_delivery import delivery_workflow_id

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


async def test_the_demo_s_events_arrive_signed_at_the_receiver(e2e_stack: Stack) -> None:
    settings: Settings = e2e_stack.app.state.settings
    receiver = Receiver(secrets=[])
    receiver.start()
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, headers=AUTH) as http:
        created = await http.post(
            "/v1/webhook-endpoints",
            json={"url": receiver.url, "event_types": list(EVENT_TYPES), "description": "crm"},
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        receiver.secrets.append(endpoint["secret"])
        try:
            subscriptions = await asyncio.to_thread(
                run_demo, settings, renewal_in=timedelta(seconds=3), echo=lambda _line: None
            )
            ada = subscriptions["ada"]

            def ada_types() -> list[str]:
                ids = set(receiver.unique_ids())
                seen = [r for r in receiver.received if r.event_id in ids]
                firsts = {r.event_id: r for r in reversed(seen)}
                return [
                    r.type
                    for r in sorted(firsts.values(), key=lambda r: receiver.received.index(r))
                    if r.payload["data"]["object"].get("subscription_id") == ada
                    or r.payload["data"]["object"].get("id") == ada
                ]

            deadline = asyncio.get_running_loop().time() + 60
            while ada_types().count("invoice.paid") < 2:
                assert asyncio.get_running_loop().time() < deadline, ada_types()
                await asyncio.sleep(0.2)
        finally:
            receiver.stop()
            await http.post(f"/v1/webhook-endpoints/{endpoint['id']}/disable", json={})
            handle = e2e_stack.app.state.temporal
            client = await handle.get()
            await client.get_workflow_handle(delivery_workflow_id(endpoint["id"])).terminate()

    types = ada_types()
    assert types[0] == "subscription.created"
    # The payment is recorded (invoice.paid), then the subscription becomes active.
    assert types.index("invoice.paid") < types.index("access.granted")
    assert types.count("invoice.finalized") == 2, "the first invoice and the renewal"
    assert receiver.refused == 0, "every delivery verified"
    brandt = {
        r.type
        for r in receiver.received
        if r.payload["data"]["object"].get("id") == subscriptions["brandt"]
    }
    assert {"subscription.created", "subscription.updated", "access.granted"} <= brandt
