"""Ops API for refunds (ops API key): refund a paid invoice fully or partly, and list
refunds (those asked here and those made in the Stripe dashboard, mirrored).

A refund goes through the gateway under an idempotency key (the request's
``idempotency_key``: the same key again answers the same refund) and is booked as a
credit note at the invoice's frozen tax rates plus a refund entry. Refusals change
nothing: 404 ``invoice_not_found``; 409 ``invoice_not_paid``; 409
``idempotency_conflict`` (the key was used for another refund); 422
``amount_exceeds_refundable``, ``invalid_reason``, ``invalid_amount``, and
``gateway_refused`` when the gateway refused the refund (nothing booked; the amount is
refundable again, under a new key); 503 when
Temporal is not reachable (the reservation stays and the same key retries it).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api.audit import OpsAudit
from api.deps import EngineDep, OpsKey, SettingsDep
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from api.schemas import ROW_ID_MAX
from api.services.refunds import request_refund
from ledger.invoices import (
    InvalidInvoiceInput,
    InvoiceIdempotencyConflict,
    InvoiceNotFound,
    InvoiceStateError,
    InvoiceStore,
)
from ledger.invoices.refunds import OPS_REASONS, RefundExceedsRefundable, RefundView

router = APIRouter(
    prefix="/v1/ops",
    tags=["ops"],
    responses={
        **OPS_ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No such invoice"},
        409: {"model": ErrorResponse, "description": "Invoice not paid, or key reused"},
    },
)


class RefundIn(BaseModel):
    amount: int | None = Field(
        default=None,
        description="Minor units, tax included; omitted: all that remains",
        json_schema_extra={"minimum": 1},
    )
    reason: str = Field(
        description=f"One of {', '.join(OPS_REASONS)}",
        json_schema_extra={"enum": list(OPS_REASONS)},
    )
    actor: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, min_length=1, max_length=2000)
    idempotency_key: str = Field(min_length=8, max_length=120, pattern=r"^[A-Za-z0-9_.:-]+$")


class RefundOut(BaseModel):
    key: str
    invoice_id: str
    status: str  # requested | recorded | failed
    refund_id: str | None
    amount: int
    currency: str
    reason: str
    note: str | None
    source: str  # ops | gateway (made in the dashboard)
    actor: str
    failure: str | None
    credit_note_id: str | None
    ledger_entry_id: int | None
    requested_at: datetime
    recorded_at: datetime | None


def refund_out(view: RefundView) -> RefundOut:
    return RefundOut(
        key=view.key,
        invoice_id=view.invoice_id,
        status=view.status,
        refund_id=view.refund_id,
        amount=view.amount,
        currency=view.currency,
        reason=view.reason,
        note=view.note,
        source=view.source,
        actor=view.actor,
        failure=view.failure,
        credit_note_id=view.credit_note_id,
        ledger_entry_id=view.ledger_entry_id,
        requested_at=view.requested_at,
        recorded_at=view.recorded_at,
    )


def refusal(err: Exception) -> ApiError:
    """The API error of a refund the invoice store refused."""
    if isinstance(err, InvoiceNotFound):
        return ApiError(404, "invoice_not_found", str(err))
    if isinstance(err, InvoiceStateError):
        return ApiError(409, "invoice_not_paid", str(err))
    if isinstance(err, InvoiceIdempotencyConflict):
        return ApiError(409, "idempotency_conflict", str(err))
    if isinstance(err, RefundExceedsRefundable):
        return ApiError(422, "amount_exceeds_refundable", str(err))
    return ApiError(422, "invalid_refund", str(err))


@router.post(
    "/invoices/{invoice_id}/refunds",
    response_model=RefundOut,
    status_code=201,
    responses={202: {"model": RefundOut, "description": "Refund still going"}},
)
async def refund_invoice(
    audit: OpsAudit,
    request: Request,
    response: Response,
    settings: SettingsDep,
    engine: EngineDep,
    invoice_id: str,
    body: RefundIn,
) -> RefundOut:
    """Refund a paid invoice fully or partly through the gateway, with a credit note."""
    if body.reason not in OPS_REASONS:
        raise ApiError(422, "invalid_reason", f"reason must be one of {', '.join(OPS_REASONS)}")
    if body.amount is not None and body.amount <= 0:
        raise ApiError(422, "invalid_amount", "amount must be a positive number of minor units")

    async def refund() -> RefundOut:
        try:
            view = await request_refund(
                request.app.state.temporal.get,
                InvoiceStore(engine, issuer=settings.invoice_issuer),
                settings.task_queue,
                invoice_id=invoice_id,
                key=body.idempotency_key,
                amount=body.amount,
                reason=body.reason,
                actor=body.actor,
                note=body.note,
            )
        except (InvoiceNotFound, InvoiceStateError, InvoiceIdempotencyConflict) as err:
            raise refusal(err) from None
        except (RefundExceedsRefundable, InvalidInvoiceInput) as err:
            raise refusal(err) from None
        if view.status == "failed":
            raise ApiError(
                422, "gateway_refused", f"the gateway refused the refund: {view.failure}"
            )
        return refund_out(view)

    asked = body.model_dump(mode="json")
    out = await audit.outcome(
        "invoice.refund",
        f"invoice:{invoice_id}",
        refund(),
        after=lambda done: {"request": asked, "refund": done.model_dump(mode="json")},
        request=asked,
    )
    if out.status == "requested":
        response.status_code = 202
    return out


@router.get("/refunds", response_model=list[RefundOut])
async def list_refunds(
    _auth: OpsKey,
    engine: EngineDep,
    invoice_id: Annotated[str | None, Query(max_length=64)] = None,
    after_id: Annotated[int, Query(ge=0, le=ROW_ID_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RefundOut]:
    """Refunds, oldest first: asked by ops and made in the dashboard alike."""
    found = await asyncio.to_thread(
        InvoiceStore(engine).list_refunds, invoice_id=invoice_id, after_id=after_id, limit=limit
    )
    return [refund_out(v) for v in found]
