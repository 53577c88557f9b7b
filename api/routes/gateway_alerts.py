"""Ops API: workflows whose charge is retried through a gateway outage (ops API key).

A subscription (its renewal's charge) or a dunning run (its retry's charge) is listed
while its ``DunwellGatewayAlert`` search attribute is set: an infrastructure failure
(authentication, permission, connection, rate_limit, server_error) outlasted the
charge's first retries. Nothing is owed by the customer
for it and no dunning runs; ops fix the gateway side and the charge goes through.
503: Temporal is not reachable.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError

from api.deps import OpsKey
from api.errors import OPS_ERROR_RESPONSES, ErrorResponse
from api.temporal_client import TemporalConnection, TemporalUnavailable
from workflows.gateway_alerts import gateway_alerts

router = APIRouter(
    prefix="/v1/ops/gateway-alerts",
    tags=["ops"],
    responses={
        **OPS_ERROR_RESPONSES,
        503: {"model": ErrorResponse, "description": "Temporal is not reachable"},
    },
)


async def _temporal(request: Request) -> Client:
    connection: TemporalConnection = request.app.state.temporal
    return await connection.get()


TemporalDep = Annotated[Client, Depends(_temporal)]


class GatewayAlertOut(BaseModel):
    workflow_id: str
    workflow_type: str
    failure: str
    subscription_id: str | None
    invoice_id: str | None
    status: str | None


class GatewayAlertsOut(BaseModel):
    alerts: list[GatewayAlertOut]


@router.get("", response_model=GatewayAlertsOut)
async def list_gateway_alerts(
    _auth: OpsKey,
    client: TemporalDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
) -> GatewayAlertsOut:
    """Running subscriptions and dunning runs whose charge waits out a gateway outage."""
    try:
        alerts = await gateway_alerts(client, limit)
    except RPCError as err:
        raise TemporalUnavailable(err.status.name) from err
    return GatewayAlertsOut(
        alerts=[
            GatewayAlertOut(
                workflow_id=a.workflow_id,
                workflow_type=a.workflow_type,
                failure=a.failure,
                subscription_id=a.subscription_id,
                invoice_id=a.invoice_id,
                status=a.status,
            )
            for a in alerts
        ]
    )
