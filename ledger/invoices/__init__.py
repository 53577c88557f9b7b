"""Invoices, credit notes and debit notes, posted to the ledger in the same transaction.

Lifecycle: draft → open (finalized) → paid / void / uncollectible; ``draft → paid``
when the finalized total is zero or negative; ``uncollectible → paid`` when a
written-off invoice is paid after all. The database refuses any other move and any
change to a finalized invoice's content (revision ``0003_billing_documents``).

Numbers: gapless per issuer, series and year (``DW-2026-000123``, ``DW-CN-2026-000001``,
``DW-DN-2026-000001``). The counter row is incremented by an upsert in the
transaction that issues the document; its row lock is held until commit, so a
rolled-back transaction gives its number back and concurrent ones queue. Lock order
everywhere: invoice row, ledger accounts (in id order, by the ledger), counter row
last, so the lock every issuer's documents share is held for the shortest time.

Ledger entries (positive = debit), written in the document's transaction:

- finalize: receivable(customer) +total, revenue -subtotal, tax_payable(j) -tax(j).
  A negative total (a proration invoice whose credits exceed its charges) goes to the
  customer's credit balance instead of a negative receivable, and the invoice is paid
  at once, as is an invoice totalling zero;
- payment: gateway_clearing +amount, receivable -amount (``bad_debt`` -amount when the
  invoice was written off: a recovery);
- uncollectible: bad_debt +remaining, receivable -remaining;
- credit note: revenue +net, tax_payable(j) +tax(j), and the total is taken first off
  what the customer still owes on the invoice (receivable) and the rest, e.g. on a
  paid invoice, goes to the customer's credit balance (customer_credit);
- debit note: receivable +total, revenue -net, tax_payable(j) -tax(j).

A credit note that brings an open invoice's amount remaining to zero marks it paid.
"""

from __future__ import annotations

from ledger.invoices.errors import (
    CreditExceedsRemaining,
    InvalidInvoiceInput,
    InvoiceError,
    InvoiceIdempotencyConflict,
    InvoiceNotFound,
    InvoiceStateError,
    PaymentExceedsRemaining,
    QuoteMismatch,
)
from ledger.invoices.proration_audit import ProrationAuditRecord
from ledger.invoices.store import InvoiceStore, bad_debt, invoice_id_for
from ledger.invoices.types import (
    CreditNoteView,
    CustomerTaxDetails,
    DebitNoteView,
    DraftLine,
    InvoiceLineView,
    InvoiceStatus,
    InvoiceView,
    LineKind,
    NoteLine,
    NoteLineView,
    NoteView,
)

__all__ = [
    "CreditExceedsRemaining",
    "CreditNoteView",
    "CustomerTaxDetails",
    "DebitNoteView",
    "DraftLine",
    "InvalidInvoiceInput",
    "InvoiceError",
    "InvoiceIdempotencyConflict",
    "InvoiceLineView",
    "InvoiceNotFound",
    "InvoiceStateError",
    "InvoiceStatus",
    "InvoiceStore",
    "InvoiceView",
    "LineKind",
    "NoteLine",
    "NoteLineView",
    "NoteView",
    "PaymentExceedsRemaining",
    "ProrationAuditRecord",
    "QuoteMismatch",
    "bad_debt",
    "invoice_id_for",
]
