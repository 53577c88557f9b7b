"""Starting endpoints' delivery workflows (``workflows.outbound_delivery``).

``wake_delivery`` is signal-with-start: it starts the endpoint's workflow, or wakes the
running one (an event replayed, the endpoint enabled again). The API calls it when an
endpoint is registered or enabled and when ops replay events; the worker calls
``ensure_delivery_workflows`` when it starts, so an endpoint registered while Temporal
was unreachable still gets its workflow.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from temporalio.client import Client

from ledger.outbound import endpoints
from workflows.outbound_delivery import (
    WAKE_SIGNAL,
    DeliveryInput,
    OutboundDeliveryWorkflow,
    delivery_workflow_id,
)


async def wake_delivery(client: Client, task_queue: str, endpoint_id: str) -> None:
    await client.start_workflow(
        OutboundDeliveryWorkflow.run,
        DeliveryInput(endpoint_id),
        id=delivery_workflow_id(endpoint_id),
        task_queue=task_queue,
        start_signal=WAKE_SIGNAL,
        static_summary=f"Deliveries to {endpoint_id}",
    )


async def ensure_delivery_workflows(client: Client, task_queue: str, engine: Engine) -> int:
    """Start (or wake) the delivery workflow of every endpoint not disabled."""
    found = await asyncio.to_thread(endpoints.list_endpoints, engine)
    live = [e.id for e in found if e.status != "disabled"]
    for endpoint_id in live:
        await wake_delivery(client, task_queue, endpoint_id)
    return len(live)
