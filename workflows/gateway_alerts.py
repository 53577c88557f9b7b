"""Subscriptions alerted of a gateway outage, as ops list them (API and CLI).

A subscription run sets the ``DunwellGatewayAlert`` search attribute while its charge
waits out an infrastructure failure (``workflows/subscription/outage.py``); this module
asks Temporal's visibility store for the running ones. Not imported by workflow code:
it does I/O, and workflow code must not re-import ``billing.gateway`` in its sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client

from billing.gateway import InfrastructureFailure
from workflows.search_attributes import GATEWAY_ALERT, STATUS


@dataclass(frozen=True)
class GatewayAlert:
    """A running subscription whose charge is retried through a gateway outage."""

    subscription_id: str
    workflow_id: str
    failure: str  # an InfrastructureFailure value
    status: str | None  # DunwellStatus


SUBSCRIPTION_PREFIX = "subscription-"
# Every value the alert takes (an IN list works on every visibility store).
GATEWAY_ALERT_QUERY = (
    "WorkflowType = 'SubscriptionWorkflow' AND ExecutionStatus = 'Running' AND "
    f"{GATEWAY_ALERT.name} IN ("
    + ", ".join(f"'{failure}'" for failure in InfrastructureFailure)
    + ")"
)


async def gateway_alerts(client: Client, limit: int = 1000) -> list[GatewayAlert]:
    """Subscriptions alerted of a gateway outage, by workflow id (at most ``limit``)."""
    found: list[GatewayAlert] = []
    async for execution in client.list_workflows(GATEWAY_ALERT_QUERY, limit=limit):
        shown = execution.typed_search_attributes
        found.append(
            GatewayAlert(
                subscription_id=execution.id.removeprefix(SUBSCRIPTION_PREFIX),
                workflow_id=execution.id,
                failure=shown.get(GATEWAY_ALERT) or "",
                status=shown.get(STATUS),
            )
        )
    return sorted(found, key=lambda alert: alert.workflow_id)
