"""Ops API for dunning runs (ops API key): read one, pause, resume, retry now, end.

Each action is a Temporal update on ``dunning-<invoice_id>``; its validator is the
authority. 404: no dunning run for the invoice; 409: the validator refused, or the run
is over; 503: Temporal is not reachable (nothing changed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.audit import AuditTrail, OpsAudit
from api.deps import OpsKey
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from api.temporal_client import TemporalConnection, TemporalUnavailable
from billing.dunning import EndAction, InvoiceEndAction
from workflows.dunning import DunningView, DunningWorkflow, EndRequest, dunning_workflow_id

router = APIRouter(
    prefix="/v1/ops/dunning",
    tags=["ops"],
    responses={
        **OPS_ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No dunning run for this invoice"},
        409: {"model": ErrorResponse, "description": "Refused in the run's current state"},
        503: {"model": ErrorResponse, "description": "Temporal is not reachable"},
    },
)

_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


async def _temporal(request: Request) -> Client:
    connection: TemporalConnection = request.app.state.temporal
    return await connection.get()


TemporalDep = Annotated[Client, Depends(_temporal)]


class AttemptOut(BaseModel):
    at: datetime
    trigger: str
    succeeded: bool
    reason: str | None
    family: str | None


class NotificationOut(BaseModel):
    key: str
    kind: str
    send_at: datetime


class DunningOut(BaseModel):
    invoice_id: str
    workflow_id: str
    phase: str
    decision: str
    policy: str
    next_retry_at: datetime | None
    due_at: datetime | None
    last_decline: str | None
    paused_by_ops: bool
    cancelled_at: datetime | None
    charge_in_flight: bool
    attempts: list[AttemptOut]
    pending_notifications: list[NotificationOut]
    sent_notifications: list[str]
    end_action: str | None
    invoice_end_action: str | None
    revoke_access_at: datetime | None


class EndIn(BaseModel):
    action: EndAction | None = None
    invoice_action: InvoiceEndAction | None = None


def dunning_out(view: DunningView) -> DunningOut:
    state = view.state
    ending = state.ending
    return DunningOut(
        invoice_id=view.invoice_id,
        workflow_id=dunning_workflow_id(view.invoice_id),
        phase=view.phase.value,
        decision=view.decision.kind,
        policy=state.policy_key,
        next_retry_at=view.next_retry_at,
        due_at=state.due_at,
        last_decline=state.last_reason,
        paused_by_ops=state.paused_by_ops,
        cancelled_at=state.cancelled_at,
        charge_in_flight=view.charge_in_flight,
        attempts=[
            AttemptOut(
                at=a.at,
                trigger=a.trigger.value,
                succeeded=a.succeeded,
                reason=a.reason,
                family=a.family.value if a.family else None,
            )
            for a in state.attempts
        ],
        pending_notifications=[
            NotificationOut(
                key=p.notification.key,
                kind=p.notification.kind.value,
                send_at=p.notification.send_at,
            )
            for p in view.pending_notifications
        ],
        sent_notifications=list(view.sent_notifications),
        end_action=ending.end_action.value if ending else None,
        invoice_end_action=ending.invoice_end_action.value if ending else None,
        revoke_access_at=ending.revoke_access_at if ending else None,
    )


async def _not_found_or_over(client: Client, invoice_id: str) -> ApiError:
    # The raw describe: it does not decode search attributes, so it works whatever
    # state the run left them in.
    request = DescribeWorkflowExecutionRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=dunning_workflow_id(invoice_id)),
    )
    try:
        await client.workflow_service.describe_workflow_execution(request)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return ApiError(404, "not_found", f"no dunning run for invoice {invoice_id}")
        raise
    return ApiError(409, "dunning_finished", f"dunning for invoice {invoice_id} is over")


async def _call(
    client: Client,
    invoice_id: str,
    action: Callable[[WorkflowHandle[DunningWorkflow, object]], Awaitable[DunningView]],
) -> DunningOut:
    handle: WorkflowHandle[DunningWorkflow, object] = client.get_workflow_handle(
        dunning_workflow_id(invoice_id)
    )
    try:
        return dunning_out(await action(handle))
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise ApiError(409, cause.type or "refused", cause.message) from err
        raise ApiError(409, "refused", str(cause or err)) from err
    except WorkflowQueryFailedError as err:
        raise ApiError(409, "query_failed", str(err)) from err
    except RPCError as err:
        if err.status in _UNREACHABLE:
            raise TemporalUnavailable(err.status.name) from err
        if err.status == RPCStatusCode.NOT_FOUND:
            try:
                raise await _not_found_or_over(client, invoice_id) from err
            except RPCError as inner:
                raise TemporalUnavailable(inner.status.name) from inner
        raise


@router.get("/{invoice_id}", response_model=DunningOut)
async def show_dunning(_auth: OpsKey, client: TemporalDep, invoice_id: str) -> DunningOut:
    """The dunning run of an invoice: phase, schedule, attempts and notifications."""
    return await _call(client, invoice_id, lambda h: h.query(DunningWorkflow.state))


async def _audited(
    audit: AuditTrail,
    step: str,
    client: Client,
    invoice_id: str,
    action: Callable[[WorkflowHandle[DunningWorkflow, object]], Awaitable[DunningView]],
    request: dict[str, object] | None = None,
) -> DunningOut:
    return await audit.outcome(
        f"dunning.{step}",
        f"invoice:{invoice_id}",
        _call(client, invoice_id, action),
        after=lambda out: {"request": request, "state": out.model_dump(mode="json")},
        request=request,
    )


@router.post("/{invoice_id}/pause", response_model=DunningOut)
async def pause_dunning(audit: OpsAudit, client: TemporalDep, invoice_id: str) -> DunningOut:
    """Pause retries until resumed."""
    return await _audited(
        audit, "pause", client, invoice_id, lambda h: h.execute_update(DunningWorkflow.pause)
    )


@router.post("/{invoice_id}/resume", response_model=DunningOut)
async def resume_dunning(audit: OpsAudit, client: TemporalDep, invoice_id: str) -> DunningOut:
    """Resume a paused run; the schedule is planned again from now."""
    return await _audited(
        audit, "resume", client, invoice_id, lambda h: h.execute_update(DunningWorkflow.resume)
    )


@router.post("/{invoice_id}/retry-now", response_model=DunningOut)
async def retry_dunning_now(audit: OpsAudit, client: TemporalDep, invoice_id: str) -> DunningOut:
    """One immediate retry, as soon as the card network rules allow."""
    return await _audited(
        audit,
        "retry_now",
        client,
        invoice_id,
        lambda h: h.execute_update(DunningWorkflow.retry_now),
    )


@router.post("/{invoice_id}/end", response_model=DunningOut)
async def end_dunning(
    audit: OpsAudit, client: TemporalDep, invoice_id: str, body: EndIn
) -> DunningOut:
    """End dunning now with an end action (default: the policy's)."""
    request = EndRequest(action=body.action, invoice_action=body.invoice_action)
    return await _audited(
        audit,
        "end",
        client,
        invoice_id,
        lambda h: h.execute_update(DunningWorkflow.end, request),
        body.model_dump(mode="json"),
    )
