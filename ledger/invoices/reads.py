"""Reading invoices and notes: on the caller's connection (views, amounts, line states),
and the invoice store's read calls built on them (``Reads``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select

from ledger.compliance_tables import (
    tax_line_records as _records,
)
from ledger.invoices.base import StoreBase
from ledger.invoices.errors import InvoiceNotFound
from ledger.invoices.note_tax import LineState
from ledger.invoices.tables import (
    invoice_lines as _lines,
)
from ledger.invoices.tables import (
    invoice_note_lines as _note_lines,
)
from ledger.invoices.tables import (
    invoice_notes as _notes,
)
from ledger.invoices.tables import (
    invoice_payments as _payments,
)
from ledger.invoices.tables import (
    invoices as _inv,
)
from ledger.invoices.types import (
    CreditNoteView,
    CustomerTaxDetails,
    DebitNoteView,
    InvoiceLineView,
    InvoiceStatus,
    InvoiceView,
    NoteLineView,
)
from tax import TaxBehavior, TaxComponent, TaxQuote, TaxReason, TaxType


@dataclass(frozen=True, slots=True)
class Amounts:
    paid: int
    credited: int
    debited: int
    credited_to_receivable: int

    def remaining(self, total: int) -> int:
        """What the customer owes: a negative total went to the credit balance."""
        return max(total, 0) + self.debited - self.paid - self.credited_to_receivable

    def creditable(self, total: int) -> int:
        return total + self.debited - self.credited


# The reads every renewal makes, built once: a statement object that is reused keeps its
# compiled form and cache key, where one built per call pays for both each time.
_INVOICE = select(_inv).where(_inv.c.id == bindparam("invoice_id"))
_INVOICE_FOR_UPDATE = _INVOICE.with_for_update()
# What recording a payment needs of the invoice (the full row is some 35 columns).
_PAYABLE = select(
    _inv.c.status,
    _inv.c.total,
    _inv.c.currency,
    _inv.c.customer_id,
    _inv.c.number,
    _inv.c.subscription_id,
).where(_inv.c.id == bindparam("invoice_id"))
_PAYABLE_FOR_UPDATE = _PAYABLE.with_for_update()
_LINES = (
    select(_lines).where(_lines.c.invoice_id == bindparam("invoice_id")).order_by(_lines.c.position)
)


def _note_sum(column: Any, kind: str) -> Any:
    return (
        select(func.coalesce(func.sum(column), 0))
        .where(_notes.c.invoice_id == bindparam("invoice_id"), _notes.c.kind == kind)
        .scalar_subquery()
    )


# What was paid, credited and debited on an invoice, in one statement.
_AMOUNTS = select(
    select(func.coalesce(func.sum(_payments.c.amount), 0))
    .where(_payments.c.invoice_id == bindparam("invoice_id"))
    .scalar_subquery(),
    _note_sum(_notes.c.total, "credit"),
    _note_sum(_notes.c.receivable_amount, "credit"),
    _note_sum(_notes.c.total, "debit"),
)


def invoice_row(conn: Connection, invoice_id: str, *, lock: bool = False) -> Row[Any]:
    query = _INVOICE_FOR_UPDATE if lock and conn.dialect.name == "postgresql" else _INVOICE
    row = conn.execute(query, {"invoice_id": invoice_id}).first()
    if row is None:
        raise InvoiceNotFound(f"no invoice {invoice_id!r}")
    return row


def payable_row(conn: Connection, invoice_id: str) -> Row[Any, Any, Any, Any, Any, Any]:
    """The invoice's status, total, currency, customer, number and subscription, locked
    for a payment."""
    query = _PAYABLE_FOR_UPDATE if conn.dialect.name == "postgresql" else _PAYABLE
    row = conn.execute(query, {"invoice_id": invoice_id}).first()
    if row is None:
        raise InvoiceNotFound(f"no invoice {invoice_id!r}")
    return row


def line_rows(conn: Connection, invoice_id: str) -> list[Row[Any]]:
    return list(conn.execute(_LINES, {"invoice_id": invoice_id}).all())


def amounts(conn: Connection, invoice_id: str) -> Amounts:
    paid, credited, credited_to_receivable, debited = conn.execute(
        _AMOUNTS, {"invoice_id": invoice_id}
    ).one()
    return Amounts(int(paid), int(credited), int(debited), int(credited_to_receivable))


def component_from(row: Any) -> TaxComponent:
    return TaxComponent(
        jurisdiction=row.jurisdiction,
        tax_type=None if row.tax_type is None else TaxType(row.tax_type),
        rate_ppm=int(row.rate_ppm),
        taxable_amount=int(row.taxable_amount),
        tax_amount=int(row.tax_amount),
        reason=TaxReason(row.reason),
        detail=row.detail,
    )


def _records_by_line(conn: Connection, document_id: str) -> dict[str, list[Any]]:
    by_line: dict[str, list[Any]] = defaultdict(list)
    for row in conn.execute(
        select(_records)
        .where(_records.c.document_id == document_id)
        .order_by(_records.c.line_id, _records.c.component_index)
    ):
        by_line[row.line_id].append(row)
    return by_line


def invoice_components(conn: Connection, invoice_id: str) -> dict[str, tuple[TaxComponent, ...]]:
    return {
        line_id: tuple(component_from(r) for r in rows)
        for line_id, rows in _records_by_line(conn, invoice_id).items()
    }


def line_states(conn: Connection, invoice_id: str) -> dict[str, LineState]:
    """Each frozen line with what notes moved since: net, taxable and tax remaining."""
    components = invoice_components(conn, invoice_id)
    net_moves: dict[str, int] = defaultdict(int)
    for kind, line_id, net in conn.execute(
        select(_notes.c.kind, _note_lines.c.invoice_line_id, _note_lines.c.amount_excluding_tax)
        .join(_notes, _notes.c.id == _note_lines.c.note_id)
        .where(_notes.c.invoice_id == invoice_id)
    ):
        net_moves[line_id] += int(net) if kind == "debit" else -int(net)
    taxable: dict[tuple[str, int], int] = defaultdict(int)
    tax: dict[tuple[str, int], int] = defaultdict(int)
    for line_id, index, taxable_sum, tax_sum in conn.execute(
        select(
            _records.c.line_id,
            _records.c.component_index,
            func.sum(_records.c.taxable_amount),
            func.sum(_records.c.tax_amount),
        )
        .where(_records.c.invoice_id == invoice_id)
        .group_by(_records.c.line_id, _records.c.component_index)
    ):
        taxable[(line_id, int(index))] = int(taxable_sum)
        tax[(line_id, int(index))] = int(tax_sum)
    states = {}
    for line in line_rows(conn, invoice_id):
        comps = components.get(line.line_id, ())
        net = int(line.amount_excluding_tax)
        states[line.line_id] = LineState(
            line_id=line.line_id,
            net=net,
            components=comps,
            remaining_net=net + net_moves[line.line_id],
            remaining_taxable=tuple(taxable[(line.line_id, i)] for i in range(len(comps))),
            remaining_tax=tuple(tax[(line.line_id, i)] for i in range(len(comps))),
        )
    return states


def load_invoice(conn: Connection, invoice_id: str) -> InvoiceView:
    row = invoice_row(conn, invoice_id)
    lines = line_rows(conn, invoice_id)
    draft = row.status == InvoiceStatus.DRAFT
    components = {} if draft else invoice_components(conn, invoice_id)
    sums = amounts(conn, invoice_id)
    if draft:
        subtotal = total = sum(int(line.amount) for line in lines)
        tax_total = 0
    else:
        subtotal, tax_total, total = int(row.subtotal), int(row.tax_total), int(row.total)
    customer_tax = (
        None
        if draft
        else CustomerTaxDetails(
            country=row.customer_country,
            region=row.customer_region,
            vat_id=row.customer_vat_id,
            name=row.customer_name,
            address_text=row.customer_address,
        )
    )
    return InvoiceView(
        id=row.id,
        number=row.number,
        status=InvoiceStatus(row.status),
        issuer=row.issuer,
        customer_id=row.customer_id,
        subscription_id=row.subscription_id,
        currency=row.currency,
        subtotal=subtotal,
        tax_total=tax_total,
        total=total,
        amount_paid=sums.paid,
        amount_credited=sums.credited,
        amount_debited=sums.debited,
        amount_remaining=0 if draft else sums.remaining(total),
        created_at=row.created_at,
        finalized_at=row.finalized_at,
        period_start=row.period_start,
        period_end=row.period_end,
        lines=tuple(
            InvoiceLineView(
                line_id=line.line_id,
                description=line.description,
                kind=line.kind,
                plan_id=line.plan_id,
                period_start=line.period_start,
                period_end=line.period_end,
                amount=int(line.amount),
                tax_behavior=TaxBehavior(line.tax_behavior),
                amount_excluding_tax=_int_or_none(line.amount_excluding_tax),
                tax_amount=_int_or_none(line.tax_amount),
                amount_including_tax=_int_or_none(line.amount_including_tax),
                components=components.get(line.line_id, ()),
            )
            for line in lines
        ),
        legal_mentions=tuple(row.legal_mentions or ()),
        customer_tax=customer_tax,
        rate_table_version=row.rate_table_version,
        tax_jurisdiction=row.tax_jurisdiction,
    )


def load_note(conn: Connection, note_id: str) -> CreditNoteView | DebitNoteView:
    row = conn.execute(select(_notes).where(_notes.c.id == note_id)).first()
    if row is None:
        raise InvoiceNotFound(f"no credit or debit note {note_id!r}")
    records = _records_by_line(conn, note_id)
    sign = -1 if row.kind == "credit" else 1
    lines = tuple(
        NoteLineView(
            invoice_line_id=line.invoice_line_id,
            amount_excluding_tax=int(line.amount_excluding_tax),
            tax_amount=int(line.tax_amount),
            # Records hold the signed effect on tax owed; a view shows the note's own sign.
            components=tuple(
                _signed(component_from(r), sign) for r in records.get(line.invoice_line_id, [])
            ),
        )
        for line in conn.execute(
            select(_note_lines)
            .where(_note_lines.c.note_id == note_id)
            .order_by(_note_lines.c.invoice_line_id)
        )
    )
    view_type = CreditNoteView if row.kind == "credit" else DebitNoteView
    return view_type(
        id=row.id,
        number=row.number,
        invoice_id=row.invoice_id,
        customer_id=row.customer_id,
        currency=row.currency,
        purpose=row.purpose,
        subtotal=int(row.subtotal),
        tax_total=int(row.tax_total),
        total=int(row.total),
        receivable_amount=int(row.receivable_amount),
        customer_credit_amount=int(row.customer_credit_amount),
        reason=row.reason,
        lines=lines,
        created_at=row.created_at,
    )


def _signed(c: TaxComponent, sign: int) -> TaxComponent:
    if sign == 1:
        return c
    return TaxComponent(
        jurisdiction=c.jurisdiction,
        tax_type=c.tax_type,
        rate_ppm=c.rate_ppm,
        taxable_amount=-c.taxable_amount,
        tax_amount=-c.tax_amount,
        reason=c.reason,
        detail=c.detail,
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def finalized_view(
    row: Any,
    lines: Sequence[Any],
    quote: TaxQuote,
    customer_tax: CustomerTaxDetails,
    number: str,
    status: InvoiceStatus,
    at: datetime,
) -> InvoiceView:
    """The invoice as just finalized, built from what the transaction holds (a fresh
    invoice has no payments or notes yet), to keep the counter lock short."""
    quoted = {q.line_id: q for q in quote.lines}
    total = quote.total_including_tax
    return InvoiceView(
        id=row.id,
        number=number,
        status=status,
        issuer=row.issuer,
        customer_id=row.customer_id,
        subscription_id=row.subscription_id,
        currency=row.currency,
        subtotal=quote.subtotal_excluding_tax,
        tax_total=quote.tax_total,
        total=total,
        amount_paid=0,
        amount_credited=0,
        amount_debited=0,
        amount_remaining=max(total, 0),
        created_at=row.created_at,
        finalized_at=at,
        period_start=row.period_start,
        period_end=row.period_end,
        lines=tuple(
            InvoiceLineView(
                line_id=line.line_id,
                description=line.description,
                kind=line.kind,
                plan_id=line.plan_id,
                period_start=line.period_start,
                period_end=line.period_end,
                amount=int(line.amount),
                tax_behavior=TaxBehavior(line.tax_behavior),
                amount_excluding_tax=quoted[line.line_id].amount_excluding_tax,
                tax_amount=quoted[line.line_id].tax_amount,
                amount_including_tax=quoted[line.line_id].amount_including_tax,
                components=quoted[line.line_id].components,
            )
            for line in lines
        ),
        legal_mentions=tuple(quote.legal_mentions),
        customer_tax=replace(customer_tax, country=customer_tax.country.upper()),
        rate_table_version=quote.rate_table_version,
        tax_jurisdiction=quote.jurisdiction,
    )


class Reads(StoreBase):
    def get(self, invoice_id: str) -> InvoiceView:
        return self._read(lambda conn: load_invoice(conn, invoice_id))

    def get_note(self, note_id: str) -> CreditNoteView | DebitNoteView:
        return self._read(lambda conn: load_note(conn, note_id))

    def list_for_customer(self, customer_id: str) -> list[InvoiceView]:
        def work(conn: Connection) -> list[InvoiceView]:
            ids = conn.execute(
                select(_inv.c.id)
                .where(_inv.c.customer_id == customer_id)
                .order_by(_inv.c.created_at, _inv.c.id)
            ).scalars()
            return [load_invoice(conn, invoice_id) for invoice_id in list(ids)]

        return self._read(work)

    def notes_for_customer(self, customer_id: str) -> list[CreditNoteView | DebitNoteView]:
        def work(conn: Connection) -> list[CreditNoteView | DebitNoteView]:
            ids = conn.execute(
                select(_notes.c.id)
                .where(_notes.c.customer_id == customer_id)
                .order_by(_notes.c.created_at, _notes.c.number)
            ).scalars()
            return [load_note(conn, note_id) for note_id in list(ids)]

        return self._read(work)

    def notes_for_invoice(self, invoice_id: str) -> list[CreditNoteView | DebitNoteView]:
        def work(conn: Connection) -> list[CreditNoteView | DebitNoteView]:
            ids = conn.execute(
                select(_notes.c.id)
                .where(_notes.c.invoice_id == invoice_id)
                .order_by(_notes.c.created_at, _notes.c.number)
            ).scalars()
            return [load_note(conn, note_id) for note_id in list(ids)]

        return self._read(work)
