"""The document as data: one frozen invoice or credit note, ready to render.

Every figure comes from the finalized record (amounts, tax components, rates, legal
mentions, the buyer's name, address and VAT id as frozen at finalization); nothing is
recomputed, so a rate change or a customer's new address never alters an issued
document. The seller's details are settings (``DUNWELL_SELLER_*``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from billing.money import Money
from dunwell.settings import Settings
from ledger.invoices.types import (
    CreditNoteView,
    InvoiceStatus,
    InvoiceView,
)
from tax import TaxComponent

DocumentKind = Literal["invoice", "credit_note"]

_REASONS = {
    "standard_rated": "",
    "reverse_charge": "reverse charge",
    "customer_exempt": "exempt",
    "not_collecting": "no tax collected",
    "not_taxable": "not taxable",
}


class DocumentUnavailable(Exception):
    """The invoice has no document yet (a draft is work in progress, never shown)."""


@dataclass(frozen=True)
class Party:
    name: str
    address_lines: tuple[str, ...]
    vat_id: str | None


@dataclass(frozen=True)
class DocumentLine:
    description: str
    period: str | None
    amount_excluding_tax: str
    tax_rates: str
    tax_amount: str
    amount_including_tax: str


@dataclass(frozen=True)
class TaxRateRow:
    """The taxable amount and the tax at one rate in one jurisdiction."""

    jurisdiction: str
    tax_type: str
    rate: str
    note: str
    taxable_amount: str
    tax_amount: str


@dataclass(frozen=True)
class Document:
    kind: DocumentKind
    title: str
    number: str
    issue_date: str
    supply_period: str | None
    refers_to: str | None  # a credit note's invoice (number and issue date)
    reason: str | None  # a credit note's reason
    status: str
    seller: Party
    buyer: Party
    currency: str
    lines: tuple[DocumentLine, ...]
    tax_rows: tuple[TaxRateRow, ...]
    subtotal: str
    tax_total: str
    total: str
    amount_paid: str | None
    amount_due: str | None
    legal_mentions: tuple[str, ...]

    @property
    def filename(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.number)
        return f"{self.kind.replace('_', '-')}-{safe}"


def seller_party(settings: Settings) -> Party:
    lines = tuple(part.strip() for part in settings.seller_address.split(",") if part.strip())
    return Party(settings.seller_name, lines, settings.seller_vat_id)


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else "—"


def _period(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None:
        return None
    return f"{_day(start)} to {_day(end)}"


def _rate(ppm: int) -> str:
    whole, frac = divmod(ppm, 10_000)
    return f"{whole}%" if frac == 0 else f"{whole}.{frac:04d}".rstrip("0") + "%"


def _buyer(invoice: InvoiceView) -> Party:
    frozen = invoice.customer_tax
    if frozen is None:
        raise DocumentUnavailable(f"invoice {invoice.id} is a draft")
    lines: list[str] = []
    if frozen.address_text:
        lines += [part.strip() for part in frozen.address_text.split(",") if part.strip()]
    elif frozen.country:
        lines.append(frozen.country)
    return Party(frozen.name or invoice.customer_id, tuple(lines), frozen.vat_id)


def tax_rows(components: Iterable[TaxComponent], currency: str) -> tuple[TaxRateRow, ...]:
    """The tax per rate and jurisdiction, summed over the lines."""
    taxable: dict[tuple[str, str, int, str], int] = defaultdict(int)
    tax: dict[tuple[str, str, int, str], int] = defaultdict(int)
    for c in components:
        key = (c.jurisdiction, str(c.tax_type or "tax"), c.rate_ppm, str(c.reason))
        taxable[key] += c.taxable_amount
        tax[key] += c.tax_amount
    rows = []
    for key in sorted(taxable):
        jurisdiction, tax_type, ppm, reason = key
        rows.append(
            TaxRateRow(
                jurisdiction=jurisdiction,
                tax_type=tax_type.upper() if len(tax_type) <= 4 else tax_type.replace("_", " "),
                rate=_rate(ppm),
                note=_REASONS.get(reason, reason.replace("_", " ")),
                taxable_amount=Money(taxable[key], currency).format(),
                tax_amount=Money(tax[key], currency).format(),
            )
        )
    return tuple(rows)


def _rates_text(components: Iterable[TaxComponent]) -> str:
    parts = []
    for c in components:
        note = _REASONS.get(str(c.reason), "")
        parts.append(f"{c.jurisdiction} {_rate(c.rate_ppm)}" + (f" ({note})" if note else ""))
    return ", ".join(parts) or "—"


def invoice_document(invoice: InvoiceView, settings: Settings) -> Document:
    if invoice.status is InvoiceStatus.DRAFT or invoice.number is None:
        raise DocumentUnavailable(f"invoice {invoice.id} is a draft")
    currency = invoice.currency

    def money(amount: int | None) -> str:
        return Money(amount or 0, currency).format()

    return Document(
        kind="invoice",
        title="Invoice",
        number=invoice.number,
        issue_date=_day(invoice.finalized_at or invoice.created_at),
        supply_period=_period(invoice.period_start, invoice.period_end),
        refers_to=None,
        reason=None,
        status=str(invoice.status),
        seller=seller_party(settings),
        buyer=_buyer(invoice),
        currency=currency,
        lines=tuple(
            DocumentLine(
                description=line.description,
                period=_period(line.period_start, line.period_end),
                amount_excluding_tax=money(line.amount_excluding_tax),
                tax_rates=_rates_text(line.components),
                tax_amount=money(line.tax_amount),
                amount_including_tax=money(line.amount_including_tax),
            )
            for line in invoice.lines
        ),
        tax_rows=tax_rows((c for line in invoice.lines for c in line.components), currency),
        subtotal=money(invoice.subtotal),
        tax_total=money(invoice.tax_total),
        total=money(invoice.total),
        amount_paid=money(invoice.amount_paid),
        amount_due=money(invoice.amount_remaining),
        legal_mentions=invoice.legal_mentions,
    )


def credit_note_document(
    note: CreditNoteView, invoice: InvoiceView, settings: Settings
) -> Document:
    """A credit note, with the buyer, the supply period and the mentions of the invoice
    it amends (what the note changes is that invoice's supply)."""
    currency = note.currency
    by_line = {line.line_id: line for line in invoice.lines}

    def money(amount: int) -> str:
        return Money(amount, currency).format()

    lines = []
    for note_line in note.lines:
        original = by_line.get(note_line.invoice_line_id)
        lines.append(
            DocumentLine(
                description=original.description if original else note_line.invoice_line_id,
                period=_period(original.period_start, original.period_end) if original else None,
                amount_excluding_tax=money(note_line.amount_excluding_tax),
                tax_rates=_rates_text(note_line.components),
                tax_amount=money(note_line.tax_amount),
                amount_including_tax=money(note_line.amount_excluding_tax + note_line.tax_amount),
            )
        )
    return Document(
        kind="credit_note",
        title="Credit note",
        number=note.number,
        issue_date=_day(note.created_at),
        supply_period=_period(invoice.period_start, invoice.period_end),
        refers_to=f"invoice {invoice.number} of {_day(invoice.finalized_at)}",
        reason=note.reason,
        status="issued",
        seller=seller_party(settings),
        buyer=_buyer(invoice),
        currency=currency,
        lines=tuple(lines),
        tax_rows=tax_rows((c for line in note.lines for c in line.components), currency),
        subtotal=money(note.subtotal),
        tax_total=money(note.tax_total),
        total=money(note.total),
        amount_paid=None,
        amount_due=None,
        legal_mentions=invoice.legal_mentions,
    )
