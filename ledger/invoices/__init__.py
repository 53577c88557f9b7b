"""Invoices, credit notes and debit notes, posted to the ledger in the same transaction.

Lifecycle: draft → open (finalized) → paid / void / uncollectible; ``draft → paid``
when the finalized total is zero or negative; ``uncollectible → paid`` when a
written-off invoice is paid after all. The database refuses any other move and any
change to a finalized invoice's content (revision ``0003_billing_documents``).

Callers use one ``InvoiceStore``; each concern is a module of its own:

- ``lifecycle``: drafts, ``issue`` and ``finalize`` (the finalization entry);
- ``numbering``: the gapless number series per issuer, series and year;
- ``payments``: ``mark_paid``, ``record_payment``, ``mark_uncollectible``;
- ``refunds``: refunds of a paid invoice, each a credit note and a refund entry
  (``refund_tables`` holds their rows);
- ``notes``: credit and debit notes, ``void``, ``rate_change_adjustment``, with the
  note tax arithmetic in ``note_tax`` (pure);
- ``reads``: views, amounts and line states, and the store's read calls;
- ``proration_audit``: the append-only proration audit records;
- ``base``: what they share (transactions, the account cache, posting, status, numbers);
- ``checks``, ``errors``, ``types``: input checks, the error hierarchy, requests and
  views; ``tables``: the invoice tables (the compliance tables are
  ``ledger.compliance_tables``).

Why one class of mixins, not separate objects: the concerns share one engine, one
retried transaction helper, one cache of committed accounts and one number series,
and a finalization or a note takes a number, and a payment or a note moves the
invoice's status, inside its own transaction. Each concern is a class on ``base.StoreBase`` and ``store.InvoiceStore``
joins them, so every method keeps its signature without forwarding code, and a
subclass that overrides one shared step (``_next_number``, as the numbering test does)
changes it for every concern at once, which composition would not.
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
from ledger.invoices.lifecycle import invoice_id_for
from ledger.invoices.payments import bad_debt
from ledger.invoices.proration_audit import ProrationAuditRecord
from ledger.invoices.store import InvoiceStore
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
