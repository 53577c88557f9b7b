"""An invoice's life up to its number: drafts, finalization, and both in one step.

``create_draft`` writes a draft, idempotent by key; ``delete_draft`` removes one (a
finalized invoice is voided by a credit note instead); ``finalize`` freezes lines,
rates, amounts and the customer's tax details, records the compliance evidence, posts
the entry and takes the next invoice number, in one transaction; ``issue`` does
``create_draft`` and ``finalize`` in one transaction, which is what a subscription's
billing step does.

Entry at finalization (positive = debit): receivable(customer) +total, revenue
-subtotal, tax_payable(j) -tax(j). A negative total (a proration invoice whose credits
exceed its charges) goes to the customer's credit balance instead of a negative
receivable, and the invoice is paid at once, as is an invoice totalling zero.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Insert, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite

from billing.money import is_supported_currency
from ledger import chart, compliance
from ledger.invoices.base import UPDATE_INVOICE, StoreBase
from ledger.invoices.checks import (
    aware,
    aware_or_none,
    check_customer_tax,
    check_draft_lines,
    check_key,
    check_quote,
    check_text,
    draft_signature,
    line_signature,
)
from ledger.invoices.errors import (
    InvalidInvoiceInput,
    InvoiceIdempotencyConflict,
    InvoiceStateError,
)
from ledger.invoices.proration_audit import jsonable
from ledger.invoices.reads import finalized_view, invoice_row, line_rows, load_invoice
from ledger.invoices.tables import (
    invoice_lines as _lines,
)
from ledger.invoices.tables import (
    invoices as _inv,
)
from ledger.invoices.types import CustomerTaxDetails, DraftLine, InvoiceStatus, InvoiceView
from tax import TaxBehavior, TaxQuote

# Statements every renewal runs, built once (see reads.py).
_DRAFT_INSERT: dict[str, Insert] = {
    name: dialect.insert(_inv).on_conflict_do_nothing(index_elements=["id"]).returning(_inv.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_INSERT_LINES = insert(_lines)
_FREEZE_LINE = (
    update(_lines)
    .where(_lines.c.invoice_id == bindparam("b_invoice"), _lines.c.line_id == bindparam("b_line"))
    .values(
        amount_excluding_tax=bindparam("b_net"),
        tax_amount=bindparam("b_tax"),
        amount_including_tax=bindparam("b_gross"),
    )
)


@dataclass(frozen=True, slots=True)
class _DraftRow:
    """The columns finalization reads of an invoice this transaction has just drafted."""

    id: str
    issuer: str
    customer_id: str
    subscription_id: str | None
    currency: str
    status: str
    created_at: datetime
    period_start: datetime | None
    period_end: datetime | None


@dataclass(frozen=True, slots=True)
class _DraftLineRow:
    line_id: str
    description: str
    kind: str
    plan_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    amount: int
    tax_behavior: str


# What the draft writer wrote in this transaction: finalizing it needs no read back.
_Written = tuple[_DraftRow, list[_DraftLineRow]]


def _columns(line: _DraftLineRow) -> dict[str, Any]:
    return {field: getattr(line, field) for field in _DraftLineRow.__slots__}


def invoice_id_for(key: str) -> str:
    return "inv_" + hashlib.sha256(key.encode()).hexdigest()[:24]


class Lifecycle(StoreBase):
    # -- drafts ---------------------------------------------------------------------

    def create_draft(
        self,
        *,
        key: str,
        customer_id: str,
        subscription_id: str | None,
        currency: str,
        lines: Sequence[DraftLine],
        period_start: datetime | None = None,
        period_end: datetime | None = None,
        at: datetime | None = None,
    ) -> InvoiceView:
        """Idempotent by ``key``: the same request returns the same draft (or the
        invoice it became); a different request under the same key is refused."""
        write = self._draft_writer(
            key=key,
            customer_id=customer_id,
            subscription_id=subscription_id,
            currency=currency,
            lines=lines,
            period_start=period_start,
            period_end=period_end,
            at=at,
        )

        def work(conn: Connection) -> InvoiceView:
            invoice_id, _ = write(conn)
            return load_invoice(conn, invoice_id)

        return self._transact(work)

    def issue(
        self,
        *,
        key: str,
        customer_id: str,
        subscription_id: str | None,
        currency: str,
        lines: Sequence[DraftLine],
        quote: TaxQuote,
        customer_tax: CustomerTaxDetails,
        at: datetime,
        period_start: datetime | None = None,
        period_end: datetime | None = None,
    ) -> InvoiceView:
        """``create_draft`` and ``finalize`` in one transaction, with the same checks and
        the same idempotency by ``key``: what a subscription's billing step does."""
        write = self._draft_writer(
            key=key,
            customer_id=customer_id,
            subscription_id=subscription_id,
            currency=currency,
            lines=lines,
            period_start=period_start,
            period_end=period_end,
            at=at,
        )
        finalize = self._finalizer(
            invoice_id_for(key), quote=quote, customer_tax=customer_tax, at=at
        )

        def work(conn: Connection) -> InvoiceView:
            _, written = write(conn)
            return finalize(conn, written)

        return self._transact(work)

    def _draft_writer(
        self,
        *,
        key: str,
        customer_id: str,
        subscription_id: str | None,
        currency: str,
        lines: Sequence[DraftLine],
        period_start: datetime | None,
        period_end: datetime | None,
        at: datetime | None,
    ) -> Callable[[Connection], tuple[str, _Written | None]]:
        """Check a draft request; the returned step writes it (or checks that the same
        request wrote it before) and returns the invoice id, with what it wrote when it
        wrote the draft just now."""
        check_key(key)
        check_text(customer_id, "customer_id", 200)
        if subscription_id is not None:
            check_text(subscription_id, "subscription_id", 200)
        if not isinstance(currency, str) or not is_supported_currency(currency):
            raise InvalidInvoiceInput(f"unsupported currency {currency!r}")
        lines = tuple(lines)
        check_draft_lines(lines)
        period_start = aware_or_none(period_start, "period_start")
        period_end = aware_or_none(period_end, "period_end")
        if period_start and period_end and period_end <= period_start:
            raise InvalidInvoiceInput("period_end must be after period_start")
        created_at = aware(at, "at") if at is not None else datetime.now(UTC)
        invoice_id = invoice_id_for(key)
        wanted = {
            "customer_id": customer_id,
            "subscription_id": subscription_id,
            "currency": currency,
            "period_start": period_start,
            "period_end": period_end,
        }

        def write(conn: Connection) -> tuple[str, _Written | None]:
            inserted = conn.execute(
                _DRAFT_INSERT[conn.dialect.name],
                {
                    "id": invoice_id,
                    "idempotency_key": key,
                    "issuer": self.issuer,
                    "status": InvoiceStatus.DRAFT.value,
                    "created_at": created_at,
                    **wanted,
                },
            ).first()
            if inserted is None:
                existing = invoice_row(conn, invoice_id)
                same = all(getattr(existing, k) == v for k, v in wanted.items())
                if not same or line_signature(line_rows(conn, invoice_id)) != draft_signature(
                    lines
                ):
                    raise InvoiceIdempotencyConflict(
                        f"key {key!r} was used for a different invoice request"
                    )
                return invoice_id, None
            written = [
                _DraftLineRow(
                    line_id=line.line_id,
                    description=line.description,
                    kind=str(line.kind),
                    plan_id=line.plan_id,
                    period_start=aware_or_none(line.period_start, "line period_start"),
                    period_end=aware_or_none(line.period_end, "line period_end"),
                    amount=line.amount,
                    tax_behavior=TaxBehavior(line.tax_behavior).value,
                )
                for line in lines
            ]
            conn.execute(
                _INSERT_LINES,
                [
                    {"invoice_id": invoice_id, "position": position, **_columns(line)}
                    for position, line in enumerate(written)
                ],
            )
            row = _DraftRow(
                id=invoice_id,
                issuer=self.issuer,
                customer_id=customer_id,
                subscription_id=subscription_id,
                currency=currency,
                status=InvoiceStatus.DRAFT.value,
                created_at=created_at,
                period_start=period_start,
                period_end=period_end,
            )
            return invoice_id, (row, written)

        return write

    def delete_draft(self, invoice_id: str) -> None:
        """Only a draft may be deleted; a finalized invoice is voided by a credit note."""

        def work(conn: Connection) -> None:
            row = invoice_row(conn, invoice_id, lock=True)
            if row.status != InvoiceStatus.DRAFT:
                raise InvoiceStateError(f"invoice {invoice_id} is {row.status}; void it instead")
            conn.execute(_lines.delete().where(_lines.c.invoice_id == invoice_id))
            conn.execute(_inv.delete().where(_inv.c.id == invoice_id))

        self._transact(work)

    # -- finalization ---------------------------------------------------------------

    def finalize(
        self,
        invoice_id: str,
        *,
        quote: TaxQuote,
        customer_tax: CustomerTaxDetails,
        at: datetime,
    ) -> InvoiceView:
        """Freeze lines, rates, amounts and the customer's tax details, assign the next
        number and post the ledger entry, all in one transaction. Finalizing a
        finalized invoice returns it unchanged."""
        finalize = self._finalizer(invoice_id, quote=quote, customer_tax=customer_tax, at=at)
        return self._transact(lambda conn: finalize(conn, None))

    def _finalizer(
        self,
        invoice_id: str,
        *,
        quote: TaxQuote,
        customer_tax: CustomerTaxDetails,
        at: datetime,
    ) -> Callable[[Connection, _Written | None], InvoiceView]:
        """The step that finalizes the invoice; given what the draft writer wrote in the
        same transaction, it reads neither the invoice nor its lines back."""
        at = aware(at, "at")
        check_customer_tax(customer_tax)

        def work(conn: Connection, written: _Written | None) -> InvoiceView:
            row: Any
            lines: Sequence[Any]
            if written is not None:  # inserted by this transaction: it holds the lock
                row, lines = written
            else:
                row = invoice_row(conn, invoice_id, lock=True)
                if row.status != InvoiceStatus.DRAFT:
                    return load_invoice(conn, invoice_id)
                lines = line_rows(conn, invoice_id)
            check_quote(quote, row.currency, lines)
            conn.execute(
                _FREEZE_LINE,
                [
                    {
                        "b_invoice": invoice_id,
                        "b_line": q.line_id,
                        "b_net": q.amount_excluding_tax,
                        "b_tax": q.tax_amount,
                        "b_gross": q.amount_including_tax,
                    }
                    for q in quote.lines
                ],
            )
            compliance.insert_tax_line_records(
                conn,
                [
                    compliance.tax_line_row(
                        "invoice",
                        invoice_id,
                        invoice_id,
                        q.line_id,
                        i,
                        row.currency,
                        q.amount,
                        q.tax_behavior.value,
                        q.amount_excluding_tax,
                        c,
                        1,
                        quote,
                        at,
                    )
                    for q in quote.lines
                    for i, c in enumerate(q.components)
                ],
            )
            self._record_compliance(conn, quote, customer_tax, row.customer_id, invoice_id, at)
            tax_by_place: dict[str, int] = defaultdict(int)
            for q in quote.lines:
                for c in q.components:
                    tax_by_place[c.jurisdiction] += c.tax_amount
            total = quote.total_including_tax
            holder = (
                chart.accounts_receivable(row.customer_id, row.currency)
                if total >= 0
                else chart.customer_credit(row.customer_id, row.currency)
            )
            entry_id = self._post(
                conn,
                key=f"invoice:{invoice_id}:finalized",
                at=at,
                description=f"invoice {invoice_id} finalized",
                currency=row.currency,
                moves=[
                    (holder, total),
                    (chart.revenue(row.currency), -quote.subtotal_excluding_tax),
                    *(
                        (chart.tax_payable(place, row.currency), -tax)
                        for place, tax in sorted(tax_by_place.items())
                    ),
                ],
                metadata={"invoice_id": invoice_id},
            )
            status = InvoiceStatus.OPEN if total > 0 else InvoiceStatus.PAID
            event = {
                "id": invoice_id,
                "subscription_id": row.subscription_id,
                "customer_id": row.customer_id,
                "currency": row.currency,
                "total": total,
                "status": status.value,
            }
            self._emit(conn, "invoice.finalized", f"invoice.finalized:{invoice_id}", row, at, event)
            if status is InvoiceStatus.PAID:
                self._emit(conn, "invoice.paid", f"invoice.paid:{invoice_id}", row, at, event)
            # The counter row is the one lock every finalization shares: take it last.
            number = self._next_number(conn, "invoice", at)
            conn.execute(
                UPDATE_INVOICE,
                {
                    "b_invoice": invoice_id,
                    "status": status.value,
                    "status_changed_at": at,
                    "number": number,
                    "finalized_at": at,
                    "subtotal": quote.subtotal_excluding_tax,
                    "tax_total": quote.tax_total,
                    "total": total,
                    "tax_engine": quote.engine,
                    "rate_table_version": quote.rate_table_version,
                    "rounding_rule": quote.rounding_rule,
                    "tax_jurisdiction": quote.jurisdiction,
                    "tax_quote_at": quote.at,
                    "customer_country": customer_tax.country.upper(),
                    "customer_region": customer_tax.region,
                    "customer_vat_id": customer_tax.vat_id,
                    "customer_name": customer_tax.name,
                    "customer_address": customer_tax.address_text,
                    "tax_evidence": [asdict(e) for e in quote.evidence],
                    "legal_mentions": list(quote.legal_mentions),
                    "vat_check": None if quote.vat_check is None else jsonable(quote.vat_check),
                    "ledger_entry_id": entry_id,
                },
            )
            return finalized_view(row, lines, quote, customer_tax, number, status, at)

        return work

    def _record_compliance(
        self,
        conn: Connection,
        quote: TaxQuote,
        customer_tax: CustomerTaxDetails,
        customer_id: str,
        invoice_id: str,
        at: datetime,
    ) -> None:
        version = quote.rate_table_version
        if (
            quote.engine == "builtin"
            and version == self._packaged_version
            and version not in self._recorded_rate_tables
        ):
            compliance.record_rate_table(conn, at=at)
            self._recorded_rate_tables.add(version)
        if quote.vat_check is not None:
            compliance.record_vat_check(
                conn, quote.vat_check, customer_id=customer_id, invoice_id=invoice_id
            )
        if customer_tax.vat_id:
            compliance.record_vat_check(
                conn,
                compliance.format_check(customer_tax.vat_id, at),
                customer_id=customer_id,
                invoice_id=invoice_id,
            )
