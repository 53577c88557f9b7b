"""Invoices and credit notes as the APIs show them, read from the invoice store.

Drafts are the workflow's work in progress and are never shown; what a customer sees
is finalized (numbered) documents only.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from api.schemas import CreditNoteOut, InvoiceOut
from ledger.invoices import InvoiceStore
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
