"""Requests to and views from the invoice store: frozen dataclasses of ints and strings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tax import TaxBehavior, TaxComponent


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class LineKind(StrEnum):
    SUBSCRIPTION = "subscription"
    PRORATION_CREDIT = "proration_credit"
    PRORATION_CHARGE = "proration_charge"
    ONE_OFF = "one_off"


@dataclass(frozen=True, slots=True)
class DraftLine:
    line_id: str
    description: str
    amount: int  # minor units as priced (tax-inclusive when tax_behavior says so)
    tax_behavior: TaxBehavior = TaxBehavior.EXCLUSIVE
    kind: str = LineKind.SUBSCRIPTION
    plan_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class NoteLine:
    invoice_line_id: str
    amount: int  # excluding tax, positive


@dataclass(frozen=True, slots=True)
class CustomerTaxDetails:
    country: str
    region: str | None = None
    vat_id: str | None = None
    name: str | None = None
    address_text: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceLineView:
    line_id: str
    description: str
    kind: str
    plan_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    amount: int
    tax_behavior: TaxBehavior
    # None while the invoice is a draft; frozen at finalization.
    amount_excluding_tax: int | None
    tax_amount: int | None
    amount_including_tax: int | None
    components: tuple[TaxComponent, ...]


@dataclass(frozen=True, slots=True)
class InvoiceView:
    id: str
    number: str | None  # None while draft
    status: InvoiceStatus
    issuer: str
    customer_id: str
    subscription_id: str | None
    currency: str
    # While draft: subtotal is the sum of line amounts as priced, tax_total 0.
    subtotal: int
    tax_total: int
    total: int
    amount_paid: int
    amount_credited: int  # sum of credit note totals
    amount_debited: int  # sum of debit note totals
    amount_remaining: int  # what the customer still owes on this invoice
    created_at: datetime
    finalized_at: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    lines: tuple[InvoiceLineView, ...]
    legal_mentions: tuple[str, ...]
    customer_tax: CustomerTaxDetails | None
    rate_table_version: str | None
    tax_jurisdiction: str | None


@dataclass(frozen=True, slots=True)
class NoteLineView:
    invoice_line_id: str
    amount_excluding_tax: int
    tax_amount: int
    components: tuple[TaxComponent, ...]


@dataclass(frozen=True, slots=True)
class NoteView:
    id: str
    number: str
    invoice_id: str
    customer_id: str
    currency: str
    purpose: str  # adjustment | void | rate_change
    subtotal: int
    tax_total: int
    total: int
    # How the total was posted: against the invoice's receivable, and the rest to
    # (credit notes) or from (never, for debit notes) the customer's credit balance.
    receivable_amount: int
    customer_credit_amount: int
    reason: str
    lines: tuple[NoteLineView, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreditNoteView(NoteView):
    pass


@dataclass(frozen=True, slots=True)
class DebitNoteView(NoteView):
    pass
