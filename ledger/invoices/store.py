"""``InvoiceStore``: the invoice store's concerns joined into the one class callers use."""

from __future__ import annotations

from ledger.invoices.lifecycle import Lifecycle
from ledger.invoices.notes import Notes
from ledger.invoices.payments import Payments
from ledger.invoices.proration_audit import ProrationAudits
from ledger.invoices.reads import Reads
from ledger.invoices.refunds import Refunds


class InvoiceStore(Lifecycle, Payments, Refunds, Notes, Reads, ProrationAudits):
    """Invoices, credit notes and debit notes, each call one transaction that also posts
    the document's ledger entry (see ``ledger.invoices`` for the lifecycle)."""
