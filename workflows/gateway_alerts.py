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
    """A running workflow whose charge is retried through a gateway outage: a
    subscription's renewal, or a dunning run's retry."""

    workflow_id: str
    workflow_type: str  # SubscriptionWorkflow | DunningWorkflow
    failure: str  # an InfrastructureFailure value
    subscription_id: str | None  # of a subscription workflow
    invoice_id: str | None  # of a dunning run
    status: str | None  # DunwellStatus (subscriptions)


SUBSCRIPTION_PREFIX = "subscription-"
DUNNING_PREFIX = "dunning-"
# Every value the alert takes (an IN list works on every visibility store).
GATEWAY_ALERT_QUERY = (
    "(WorkflowType = 'SubscriptionWorkflow' OR WorkflowType = 'DunningWorkflow') "
    f"AND ExecutionStatus = 'Running' AND {GATEWAY_ALERT.name} IN ("
    + ", ".join(f"'{failure}'" for failure in InfrastructureFailure)
    + ")"
)


async def gateway_alerts(client: Client, limit: int = 1000) -> list[GatewayAlert]:
    """Workflows alerted of a gateway outage, by workflow id (at most ``limit``)."""
    found: list[GatewayAlert] = []
    async for execution in client.list_workflows(GATEWAY_ALERT_QUERY, limit=limit):
        shown = execution.typed_search_attributes
        dunning = execution.workflow_type == "DunningWorkflow"
        found.append(
            GatewayAlert(
                workflow_id=execution.id,
                workflow_type=execution.workflow_type,
                failure=shown.get(GATEWAY_ALERT) or "",
                subscription_id=None if dunning else execution.id.removeprefix(SUBSCRIPTION_PREFIX),
                invoice_id=execution.id.removeprefix(DUNNING_PREFIX) if dunning else None,
                status=shown.get(STATUS),
            )
        )
    return sorted(found, key=lambda alert: alert.workflow_id)
