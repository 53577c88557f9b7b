"""Ops API for manual reviews opened when a plan change's proration charge failed
(ops API key): read one, retry the change, accept it with a new payment method, write off.

Each action is a Temporal update on ``review-<invoice_id>``; the workflow's validators
decide. 404: no review for the invoice; 409: refused (e.g. already resolved);
503: Temporal is not reachable (nothing changed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.audit import AuditTrail, OpsAudit
from api.deps import OpsKey
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from api.temporal_client import TemporalConnection, TemporalUnavailable
from workflows.manual_review import (
    AcceptPaymentMethodRequest,
    ManualReviewWorkflow,
    ReviewInput,
    ReviewResolution,
    WriteOffRequest,
)

router = APIRouter(
    prefix="/v1/ops/reviews",
    tags=["ops"],
    responses={
        **OPS_ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No review for this invoice"},
        409: {"model": ErrorResponse, "description": "Refused in the review's current state"},
        503: {"model": ErrorResponse, "description": "Temporal is not reachable"},
    },
)

_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


def review_workflow_id(invoice_id: str) -> str:
    return f"review-{invoice_id}"


async def _temporal(request: Request) -> Client:
    connection: TemporalConnection = request.app.state.temporal
    return await connection.get()


TemporalDep = Annotated[Client, Depends(_temporal)]


class ReviewOut(BaseModel):
    review_id: str
    subscription_id: str
    reason: str
    invoice_id: str
    credit_note_id: str
    from_plan: str
    to_plan: str
    amount: int
    currency: str
    decline_family: str | None
    decline_reason: str | None
    opened_at: datetime
    resolution: str | None
    resolved_at: datetime | None
    payment_method_id: str | None


class AcceptIn(BaseModel):
    payment_method_id: str = Field(pattern=r"^pm_[A-Za-z0-9_]{1,200}$")


class WriteOffIn(BaseModel):
    note: str = Field(default="", max_length=2000)


def review_out(review: ReviewInput, resolution: ReviewResolution | None) -> ReviewOut:
    return ReviewOut(
        review_id=review_workflow_id(review.invoice_id),
        subscription_id=review.subscription_id,
        reason=review.reason,
        invoice_id=review.invoice_id,
        credit_note_id=review.credit_note_id,
        from_plan=review.from_plan,
        to_plan=review.to_plan,
        amount=review.amount,
        currency=review.currency,
        decline_family=review.decline_family,
        decline_reason=review.decline_reason,
        opened_at=review.opened_at,
        resolution=resolution.action if resolution else None,
        resolved_at=resolution.resolved_at if resolution else None,
        payment_method_id=resolution.payment_method_id if resolution else None,
    )


Handle = WorkflowHandle[ManualReviewWorkflow, Any]


async def _call(
    client: Client, invoice_id: str, action: Callable[[Handle], Awaitable[object]] | None
) -> ReviewOut:
    handle: Handle = client.get_workflow_handle(review_workflow_id(invoice_id))
    try:
        if action is not None:
            await action(handle)
        review = await handle.query(ManualReviewWorkflow.review)
        resolution = await handle.query(ManualReviewWorkflow.resolution)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise ApiError(409, cause.type or "refused", cause.message) from err
        raise ApiError(409, "refused", str(cause or err)) from err
    except RPCError as err:
        if err.status in _UNREACHABLE:
            raise TemporalUnavailable(err.status.name) from err
        if err.status == RPCStatusCode.NOT_FOUND:
            raise await _missing_or_closed(handle, invoice_id) from err
        raise
    if review is None:
        raise ApiError(409, "review_not_started", f"the review of {invoice_id} has not started")
    return review_out(review, resolution)


async def _missing_or_closed(handle: Handle, invoice_id: str) -> ApiError:
    # An update to a review that has already closed is answered NOT_FOUND as well.
    try:
        await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return ApiError(404, "not_found", f"no review for invoice {invoice_id}")
        raise TemporalUnavailable(err.status.name) from err
    return ApiError(409, "review_already_resolved", f"the review of invoice {invoice_id} is closed")


@router.get("/{invoice_id}", response_model=ReviewOut)
async def show_review(_auth: OpsKey, client: TemporalDep, invoice_id: str) -> ReviewOut:
    """The review of a failed plan change: what failed and how it was resolved."""
    return await _call(client, invoice_id, None)


async def _audited(
    audit: AuditTrail,
    step: str,
    client: Client,
    invoice_id: str,
    action: Callable[[Handle], Awaitable[object]],
    request: dict[str, object] | None = None,
) -> ReviewOut:
    return await audit.outcome(
        f"review.{step}",
        f"invoice:{invoice_id}",
        _call(client, invoice_id, action),
        after=lambda out: {"request": request, "state": out.model_dump(mode="json")},
        request=request,
    )


@router.post("/{invoice_id}/retry", response_model=ReviewOut)
async def retry_change(audit: OpsAudit, client: TemporalDep, invoice_id: str) -> ReviewOut:
    """Run the plan change again with the payment method on file."""
    return await _audited(
        audit, "retry", client, invoice_id, lambda h: h.execute_update(ManualReviewWorkflow.retry)
    )


@router.post("/{invoice_id}/accept-payment-method", response_model=ReviewOut)
async def accept_with_payment_method(
    audit: OpsAudit, client: TemporalDep, invoice_id: str, body: AcceptIn
) -> ReviewOut:
    """Run the plan change again with a new payment method (a gateway token only)."""
    request = AcceptPaymentMethodRequest(payment_method_id=body.payment_method_id)
    return await _audited(
        audit,
        "accept_payment_method",
        client,
        invoice_id,
        lambda h: h.execute_update(ManualReviewWorkflow.accept_with_payment_method, request),
        body.model_dump(mode="json"),
    )


@router.post("/{invoice_id}/write-off", response_model=ReviewOut)
async def write_off(
    audit: OpsAudit, client: TemporalDep, invoice_id: str, body: WriteOffIn
) -> ReviewOut:
    """Close the review without the change; the subscription stays on its plan."""
    request = WriteOffRequest(note=body.note)
    return await _audited(
        audit,
        "write_off",
        client,
        invoice_id,
        lambda h: h.execute_update(ManualReviewWorkflow.write_off, request),
        body.model_dump(mode="json"),
    )
