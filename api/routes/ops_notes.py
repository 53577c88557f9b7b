"""Ops API (ops API key): credit and debit notes on a finalized invoice, issued by hand.

The invoice store's limits apply (a credit never exceeds what remains creditable, per
line and in total; only open or paid invoices; lines with a positive net), tax comes
from the invoice's frozen rates, the note posts its ledger entry, and the actor is
recorded. ``idempotency_key`` makes a retry return the first note. Refusals change
nothing: 404 unknown invoice, 409 an invoice that cannot be adjusted or a key used for
another request, 422 a malformed request or one beyond the limits.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from api.audit import AuditTrail, OpsAudit
from api.deps import EngineDep, SettingsDep
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from ledger.invoices import (
    CreditExceedsRemaining,
    InvalidInvoiceInput,
    InvoiceIdempotencyConflict,
    InvoiceNotFound,
    InvoiceStateError,
    InvoiceStore,
    NoteLine,
)
from ledger.ops_notes import NoteKind, OpsNote, issue_ops_note

router = APIRouter(
    prefix="/v1/ops/invoices",
    tags=["ops"],
    responses={
        **OPS_ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No such invoice"},
        409: {"model": ErrorResponse, "description": "The invoice cannot be adjusted"},
    },
)

InvoiceId = Annotated[str, Path(min_length=1, max_length=64)]


class NoteLineIn(BaseModel):
    line_id: str = Field(min_length=1, max_length=100)
    amount: int = Field(gt=0, le=10**15, description="Net amount, minor units")


class NoteIn(BaseModel):
    lines: list[NoteLineIn] = Field(min_length=1, max_length=500)
    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(min_length=1, max_length=200)
    # The note's key is ``ops:<kind>:`` and this, at most 200 characters in all.
    idempotency_key: str = Field(min_length=1, max_length=180)


class NoteTaxOut(BaseModel):
    jurisdiction: str
    tax_type: str | None
    rate_ppm: int
    taxable_amount: int
    tax_amount: int
    reason: str


class NoteLineOut(BaseModel):
    line_id: str
    amount_excluding_tax: int
    tax_amount: int
    tax: list[NoteTaxOut]


class OpsNoteOut(BaseModel):
    id: str
    number: str
    kind: str
    invoice_id: str
    customer_id: str
    currency: str
    purpose: str
    reason: str
    subtotal: int
    tax_total: int
    total: int
    receivable_amount: int
    customer_credit_amount: int
    actor: str
    lines: list[NoteLineOut]
    created_at: datetime


def note_out(issued: OpsNote, kind: NoteKind) -> OpsNoteOut:
    n = issued.note
    return OpsNoteOut(
        id=n.id,
        number=n.number,
        kind=kind,
        invoice_id=n.invoice_id,
        customer_id=n.customer_id,
        currency=n.currency,
        purpose=n.purpose,
        reason=n.reason,
        subtotal=n.subtotal,
        tax_total=n.tax_total,
        total=n.total,
        receivable_amount=n.receivable_amount,
        customer_credit_amount=n.customer_credit_amount,
        actor=issued.actor,
        lines=[
            NoteLineOut(
                line_id=line.invoice_line_id,
                amount_excluding_tax=line.amount_excluding_tax,
                tax_amount=line.tax_amount,
                tax=[
                    NoteTaxOut(
                        jurisdiction=c.jurisdiction,
                        tax_type=None if c.tax_type is None else str(c.tax_type),
                        rate_ppm=c.rate_ppm,
                        taxable_amount=c.taxable_amount,
                        tax_amount=c.tax_amount,
                        reason=str(c.reason),
                    )
                    for c in line.components
                ],
            )
            for line in n.lines
        ],
        created_at=n.created_at,
    )


async def _issue(
    audit: AuditTrail,
    engine: EngineDep,
    issuer: str,
    invoice_id: str,
    kind: NoteKind,
    body: NoteIn,
) -> OpsNoteOut:
    store = InvoiceStore(engine, issuer=issuer)

    def audited(conn: Connection, issued: OpsNote) -> None:
        audit.record(
            conn,
            f"invoice.{kind}_note",
            f"invoice:{invoice_id}",
            after=note_out(issued, kind).model_dump(mode="json"),
        )

    try:
        issued = await asyncio.to_thread(
            issue_ops_note,
            store,
            invoice_id,
            kind=kind,
            key=f"ops:{kind}:{body.idempotency_key}",
            lines=[NoteLine(line.line_id, line.amount) for line in body.lines],
            reason=body.reason,
            actor=body.actor,
            at=datetime.now(UTC),
            also=audited,
        )
    except InvoiceNotFound:
        raise ApiError(404, "unknown_invoice", f"no invoice {invoice_id!r}") from None
    except InvoiceStateError as err:
        raise ApiError(409, "invoice_not_adjustable", str(err)) from None
    except InvoiceIdempotencyConflict as err:
        raise ApiError(409, "idempotency_key_reused", str(err)) from None
    except CreditExceedsRemaining as err:
        raise ApiError(422, "credit_exceeds_remaining", str(err)) from None
    except InvalidInvoiceInput as err:
        raise ApiError(422, "invalid_note", str(err)) from None
    return note_out(issued, kind)


@router.post("/{invoice_id}/credit-notes", status_code=201, response_model=OpsNoteOut)
async def issue_credit_note(
    audit: OpsAudit,
    engine: EngineDep,
    settings: SettingsDep,
    invoice_id: InvoiceId,
    body: NoteIn,
) -> OpsNoteOut:
    """Credit lines of an invoice at its frozen rates (never more than remains)."""
    return await _issue(audit, engine, settings.invoice_issuer, invoice_id, "credit", body)


@router.post("/{invoice_id}/debit-notes", status_code=201, response_model=OpsNoteOut)
async def issue_debit_note(
    audit: OpsAudit,
    engine: EngineDep,
    settings: SettingsDep,
    invoice_id: InvoiceId,
    body: NoteIn,
) -> OpsNoteOut:
    """Charge more on lines of an invoice at its frozen rates."""
    return await _issue(audit, engine, settings.invoice_issuer, invoice_id, "debit", body)
