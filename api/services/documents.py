"""Invoices and credit notes as the APIs show them, read from the invoice store.

Drafts are the workflow's work in progress and are never shown; what a customer sees
is finalized (numbered) documents only, as lists or as documents (HTML and PDF, built
by ``api.documents`` from the frozen record).
"""

from __future__ import annotations

import asyncio

from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine

from api.documents import model
from api.documents.html import render_html
from api.documents.model import Document
from api.documents.pdf import render_pdf
from api.errors import ApiError
from api.schemas import CreditNoteOut, InvoiceOut
from dunwell.settings import Settings
from ledger.invoices import InvoiceNotFound, InvoiceStore
from ledger.invoices.types import CreditNoteView, InvoiceStatus, InvoiceView


def invoice_out(view: InvoiceView) -> InvoiceOut:
    return InvoiceOut(
        id=view.id,
        number=view.number,
        status=str(view.status),
        subscription_id=view.subscription_id,
        currency=view.currency,
        subtotal=view.subtotal,
        tax_total=view.tax_total,
        total=view.total,
        amount_paid=view.amount_paid,
        amount_remaining=view.amount_remaining,
        amount_credited=view.amount_credited,
        period_start=view.period_start,
        period_end=view.period_end,
        created_at=view.created_at,
        finalized_at=view.finalized_at,
    )


def credit_note_out(view: CreditNoteView) -> CreditNoteOut:
    return CreditNoteOut(
        id=view.id,
        number=view.number,
        invoice_id=view.invoice_id,
        currency=view.currency,
        purpose=view.purpose,
        reason=view.reason,
        subtotal=view.subtotal,
        tax_total=view.tax_total,
        total=view.total,
        created_at=view.created_at,
    )


async def list_invoices(
    *, engine: Engine, customer_id: str, subscription_id: str | None = None
) -> list[InvoiceOut]:
    views = await asyncio.to_thread(InvoiceStore(engine).list_for_customer, customer_id)
    return [
        invoice_out(v)
        for v in views
        if v.status is not InvoiceStatus.DRAFT
        and (subscription_id is None or v.subscription_id == subscription_id)
    ]


async def list_credit_notes(*, engine: Engine, customer_id: str) -> list[CreditNoteOut]:
    notes = await asyncio.to_thread(InvoiceStore(engine).notes_for_customer, customer_id)
    return [credit_note_out(n) for n in notes if isinstance(n, CreditNoteView)]


# --- documents (HTML and PDF) --------------------------------------------------------


def _not_found(kind: str, document_id: str) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"no {kind.replace('_', ' ')} {document_id!r}")


async def invoice_document(
    *, engine: Engine, settings: Settings, invoice_id: str, customer_id: str | None = None
) -> Document:
    """The invoice's document; with ``customer_id``, only if it is that customer's.
    Drafts and other customers' invoices are "not found" alike."""
    try:
        view = await asyncio.to_thread(InvoiceStore(engine).get, invoice_id)
    except InvoiceNotFound:
        raise _not_found("invoice", invoice_id) from None
    if customer_id is not None and view.customer_id != customer_id:
        raise _not_found("invoice", invoice_id)
    try:
        return model.invoice_document(view, settings)
    except model.DocumentUnavailable:
        raise _not_found("invoice", invoice_id) from None


async def credit_note_document(
    *, engine: Engine, settings: Settings, note_id: str, customer_id: str | None = None
) -> Document:
    store = InvoiceStore(engine)
    try:
        note = await asyncio.to_thread(store.get_note, note_id)
    except InvoiceNotFound:
        raise _not_found("credit_note", note_id) from None
    if not isinstance(note, CreditNoteView) or (
        customer_id is not None and note.customer_id != customer_id
    ):
        raise _not_found("credit_note", note_id)
    invoice = await asyncio.to_thread(store.get, note.invoice_id)
    return model.credit_note_document(note, invoice, settings)


# Invoices hold personal data: never cached, never framed, no script, no remote asset.
_DOCUMENT_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


def html_response(doc: Document) -> HTMLResponse:
    return HTMLResponse(render_html(doc), headers=_DOCUMENT_HEADERS)


def pdf_response(doc: Document) -> Response:
    return Response(
        render_pdf(doc),
        media_type="application/pdf",
        headers={
            **_DOCUMENT_HEADERS,
            "Content-Disposition": f'attachment; filename="{doc.filename}.pdf"',
        },
    )
