"""Credit and debit notes on a finalized invoice: adjustments, voids, rate changes.

A finalized invoice never changes; a note references it. ``credit_note`` and
``debit_note`` adjust lines at their frozen rates (``ledger.invoices.note_tax`` holds
the arithmetic), ``void`` credits everything that remains on an open invoice without
payments, and ``rate_change_adjustment`` corrects the tax of a period that straddles a
rate change. Entries (positive = debit):

- credit note: revenue +net, tax_payable(j) +tax(j), and the total is taken first off
  what the customer still owes on the invoice (receivable) and the rest, e.g. on a
  paid invoice, goes to the customer's credit balance (customer_credit);
- debit note: receivable +total, revenue -net, tax_payable(j) -tax(j).

A credit note that brings an open invoice's amount remaining to zero marks it paid.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from ledger import chart, compliance
from ledger.accounts import AccountSpec
from ledger.invoices.base import StoreBase
from ledger.invoices.checks import aware, check_key, check_note_lines, check_text
from ledger.invoices.errors import (
    CreditExceedsRemaining,
    InvalidInvoiceInput,
    InvoiceIdempotencyConflict,
    InvoiceStateError,
    QuoteMismatch,
)
from ledger.invoices.note_tax import (
    NoteComponent,
    NoteLineTax,
    credit_line,
    debit_line,
    rate_change_delta,
)
from ledger.invoices.reads import amounts, invoice_row, line_rows, line_states, load_note
from ledger.invoices.tables import (
    invoice_note_lines as _note_lines,
)
from ledger.invoices.tables import (
    invoice_notes as _notes,
)
from ledger.invoices.types import CreditNoteView, DebitNoteView, InvoiceStatus, NoteLine
from tax import TaxComponent, TaxQuote


def note_id_for(kind: str, key: str) -> str:
    prefix = "cn_" if kind == "credit" else "dn_"
    return prefix + hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class _NoteDraft:
    kind: str  # credit | debit
    purpose: str
    lines: tuple[NoteLineTax, ...]  # signed as the note's own amounts (positive credits)

    @property
    def subtotal(self) -> int:
        return sum(line.net for line in self.lines)

    @property
    def tax_total(self) -> int:
        return sum(line.tax for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal + self.tax_total


class Notes(StoreBase):
    def credit_note(
        self,
        invoice_id: str,
        *,
        key: str,
        lines: Sequence[NoteLine],
        reason: str,
        at: datetime,
    ) -> CreditNoteView:
        """Credit part of an open or paid invoice; tax from the frozen rates. Never more
        than remains creditable, per line and in total."""
        view = self._issue_note(invoice_id, "credit", "adjustment", key, lines, reason, at)
        assert isinstance(view, CreditNoteView)
        return view

    def debit_note(
        self,
        invoice_id: str,
        *,
        key: str,
        lines: Sequence[NoteLine],
        reason: str,
        at: datetime,
    ) -> DebitNoteView:
        """Charge more on lines of an open or paid invoice, at their frozen rates."""
        view = self._issue_note(invoice_id, "debit", "adjustment", key, lines, reason, at)
        assert isinstance(view, DebitNoteView)
        return view

    def void(self, invoice_id: str, *, key: str, reason: str, at: datetime) -> CreditNoteView:
        """Void an open invoice without payments through a credit note for everything
        that remains; idempotent by ``key``."""
        view = self._issue_note(invoice_id, "credit", "void", key, None, reason, at)
        assert isinstance(view, CreditNoteView)
        return view

    def rate_change_adjustment(
        self,
        invoice_id: str,
        *,
        new_quote: TaxQuote,
        change_at: datetime,
        period_start: datetime,
        period_end: datetime,
        key: str | None = None,
        at: datetime | None = None,
        reason: str | None = None,
    ) -> CreditNoteView | DebitNoteView | None:
        """Correct the tax of a finalized invoice whose period straddles a rate change:
        for the exact seconds from ``change_at`` to ``period_end``, the difference
        between the new rates (``new_quote``, quoted for the same lines at or after the
        change) and the frozen ones. A debit note when tax goes up, a credit note when
        it goes down, None when nothing changes. Issued when a later cycle is billed."""
        change_at = aware(change_at, "change_at")
        period_start = aware(period_start, "period_start")
        period_end = aware(period_end, "period_end")
        if not period_start <= change_at < period_end:
            raise InvalidInvoiceInput("change_at must fall inside [period_start, period_end)")
        period_seconds = (period_end - period_start) // timedelta(seconds=1)
        seconds_after = (period_end - change_at) // timedelta(seconds=1)
        key = key or f"rate_change:{invoice_id}:{change_at.isoformat()}"
        at = aware(at, "at") if at is not None else datetime.now(UTC)
        reason = reason or f"tax rate change on {change_at.isoformat()}"

        def plan(conn: Connection) -> _NoteDraft | None:
            row = invoice_row(conn, invoice_id)
            if new_quote.currency != row.currency:
                raise QuoteMismatch("the new quote is in another currency")
            states = line_states(conn, invoice_id)
            new_lines = {q.line_id: q for q in new_quote.lines}
            deltas = []
            for line_id, state in states.items():
                quoted = new_lines.get(line_id)
                if quoted is None:
                    raise QuoteMismatch(f"the new quote has no line {line_id!r}")
                old_keys = [(c.jurisdiction, c.tax_type) for c in state.components]
                new_keys = [(c.jurisdiction, c.tax_type) for c in quoted.components]
                if old_keys != new_keys:
                    raise QuoteMismatch(f"line {line_id!r} is taxed by other components now")
                delta = rate_change_delta(
                    state,
                    [c.rate_ppm for c in quoted.components],
                    seconds_after=seconds_after,
                    period_seconds=period_seconds,
                )
                if any(p.component.tax_amount for p in delta.components):
                    deltas.append(delta)
            total = sum(d.tax for d in deltas)
            if total == 0:
                return None
            kind = "debit" if total > 0 else "credit"
            sign = 1 if total > 0 else -1
            return _NoteDraft(
                kind,
                "rate_change",
                tuple(
                    NoteLineTax(d.line_id, 0, sign * d.tax, _scale(d.components, sign))
                    for d in deltas
                ),
            )

        return self._issue_planned(invoice_id, key, reason, at, plan)

    def _issue_note(
        self,
        invoice_id: str,
        kind: str,
        purpose: str,
        key: str,
        lines: Sequence[NoteLine] | None,
        reason: str,
        at: datetime,
    ) -> CreditNoteView | DebitNoteView:
        at = aware(at, "at")
        requested = None if lines is None else check_note_lines(lines)

        def plan(conn: Connection) -> _NoteDraft:
            states = line_states(conn, invoice_id)
            if purpose == "void":
                if amounts(conn, invoice_id).paid:
                    raise InvoiceStateError(
                        f"invoice {invoice_id} has payments; credit it instead of voiding"
                    )
                return _NoteDraft(
                    kind,
                    purpose,
                    tuple(
                        credit_line(s, s.remaining_net)
                        for s in states.values()
                        if s.remaining_net or any(s.remaining_tax)
                    ),
                )
            assert requested is not None
            note_lines = []
            for line_id, amount in requested:
                state = states.get(line_id)
                if state is None:
                    raise InvalidInvoiceInput(f"invoice {invoice_id} has no line {line_id!r}")
                if state.net <= 0:
                    raise InvalidInvoiceInput(
                        f"line {line_id!r} has no positive net amount to adjust"
                    )
                if kind == "credit":
                    if amount > state.remaining_net:
                        raise CreditExceedsRemaining(
                            f"line {line_id!r}: {amount} asked, {state.remaining_net} creditable"
                        )
                    note_lines.append(credit_line(state, amount))
                else:
                    note_lines.append(debit_line(state, amount))
            return _NoteDraft(kind, purpose, tuple(note_lines))

        allowed = (
            (InvoiceStatus.OPEN,) if purpose == "void" else (InvoiceStatus.OPEN, InvoiceStatus.PAID)
        )
        view = self._issue_planned(
            invoice_id, key, reason, at, plan, expected_kind=kind, allowed=allowed
        )
        assert view is not None
        return view

    def _issue_planned(
        self,
        invoice_id: str,
        key: str,
        reason: str,
        at: datetime,
        plan: Callable[[Connection], _NoteDraft | None],
        *,
        expected_kind: str | None = None,
        allowed: tuple[InvoiceStatus, ...] = (InvoiceStatus.OPEN, InvoiceStatus.PAID),
    ) -> CreditNoteView | DebitNoteView | None:
        check_key(key)
        check_text(reason, "reason", 2000)

        def work(conn: Connection) -> CreditNoteView | DebitNoteView | None:
            row = invoice_row(conn, invoice_id, lock=True)
            seen = conn.execute(select(_notes).where(_notes.c.idempotency_key == key)).first()
            if seen is not None:
                if seen.invoice_id != invoice_id or (
                    expected_kind is not None and seen.kind != expected_kind
                ):
                    raise InvoiceIdempotencyConflict(f"note key {key!r} was used differently")
                return load_note(conn, seen.id)
            status = InvoiceStatus(row.status)
            if status not in allowed:
                raise InvoiceStateError(f"invoice {invoice_id} is {status}; it cannot be adjusted")
            draft = plan(conn)
            if draft is None:
                return None
            return self._write_note(conn, row, key, reason, at, draft)

        return self._transact(work)

    def _write_note(
        self, conn: Connection, row: Any, key: str, reason: str, at: datetime, draft: _NoteDraft
    ) -> CreditNoteView | DebitNoteView:
        invoice_id = row.id
        sums = amounts(conn, invoice_id)
        total = draft.total
        if draft.kind == "credit":
            creditable = sums.creditable(int(row.total))
            if total > creditable:
                raise CreditExceedsRemaining(
                    f"credit of {total} exceeds the {creditable} creditable on {row.number}"
                )
            remaining = sums.remaining(int(row.total))
            receivable_part = max(0, min(total, remaining))
            credit_part = total - receivable_part
        else:
            receivable_part, credit_part = total, 0
        if credit_part < 0:
            raise CreditExceedsRemaining("a credit note cannot be negative")
        series = "credit_note" if draft.kind == "credit" else "debit_note"
        note_id = note_id_for(draft.kind, key)
        sign = -1 if draft.kind == "credit" else 1  # effect on what was charged
        tax_by_place: dict[str, int] = defaultdict(int)
        records = []
        originals = {line.line_id: line for line in line_rows(conn, invoice_id)}
        for line in draft.lines:
            original = originals[line.line_id]
            for part in line.components:
                tax_by_place[part.component.jurisdiction] += sign * part.component.tax_amount
                records.append(
                    compliance.tax_line_row(
                        series,
                        note_id,
                        invoice_id,
                        line.line_id,
                        part.index,
                        row.currency,
                        line.net + line.tax,
                        original.tax_behavior,
                        line.net,
                        part.component,
                        sign,
                        None,
                        at,
                        rate_table_version=row.rate_table_version,
                        tax_engine=row.tax_engine,
                        tax_point_at=row.tax_quote_at,
                    )
                )
        moves: list[tuple[AccountSpec, int]] = [
            (chart.revenue(row.currency), -sign * draft.subtotal),
            *(
                (chart.tax_payable(place, row.currency), -tax)
                for place, tax in sorted(tax_by_place.items())
            ),
        ]
        if draft.kind == "credit":
            moves.append(
                (chart.accounts_receivable(row.customer_id, row.currency), -receivable_part)
            )
            moves.append((chart.customer_credit(row.customer_id, row.currency), -credit_part))
        else:
            moves.append((chart.accounts_receivable(row.customer_id, row.currency), total))
        label = "credit note" if draft.kind == "credit" else "debit note"
        entry_id = self._post(
            conn,
            key=f"note:{note_id}",
            at=at,
            description=f"{label} {note_id} on invoice {row.number}",
            currency=row.currency,
            moves=moves,
            metadata={"invoice_id": invoice_id, "note_id": note_id},
        )
        number = self._next_number(conn, series, at)
        conn.execute(
            insert(_notes).values(
                id=note_id,
                idempotency_key=key,
                kind=draft.kind,
                purpose=draft.purpose,
                issuer=self.issuer,
                number=number,
                invoice_id=invoice_id,
                customer_id=row.customer_id,
                currency=row.currency,
                reason=reason,
                subtotal=draft.subtotal,
                tax_total=draft.tax_total,
                total=total,
                receivable_amount=receivable_part,
                customer_credit_amount=credit_part,
                created_at=at,
                ledger_entry_id=entry_id,
            )
        )
        conn.execute(
            insert(_note_lines),
            [
                {
                    "note_id": note_id,
                    "invoice_line_id": line.line_id,
                    "amount_excluding_tax": line.net,
                    "tax_amount": line.tax,
                }
                for line in draft.lines
            ],
        )
        compliance.insert_tax_line_records(conn, records)
        if draft.kind == "credit":
            issued = {
                "id": note_id,
                "number": number,
                "invoice_id": invoice_id,
                "customer_id": row.customer_id,
                "currency": row.currency,
                "total": total,
                "reason": reason,
            }
            self._emit(conn, "credit_note.issued", f"credit_note.issued:{note_id}", row, at, issued)
        status = InvoiceStatus(row.status)
        if draft.purpose == "void":
            self._set_status(conn, invoice_id, InvoiceStatus.VOID, at)
        elif (
            draft.kind == "credit"
            and status is InvoiceStatus.OPEN
            and amounts(conn, invoice_id).remaining(int(row.total)) == 0
        ):
            self._set_status(conn, invoice_id, InvoiceStatus.PAID, at)
        return load_note(conn, note_id)


def _scale(parts: Sequence[NoteComponent], sign: int) -> tuple[NoteComponent, ...]:
    return tuple(
        NoteComponent(
            p.index,
            TaxComponent(
                jurisdiction=p.component.jurisdiction,
                tax_type=p.component.tax_type,
                rate_ppm=p.component.rate_ppm,
                taxable_amount=sign * p.component.taxable_amount,
                tax_amount=sign * p.component.tax_amount,
                reason=p.component.reason,
                detail=p.component.detail,
            ),
        )
        for p in parts
    )
