"""The invoice store: every invoice, credit note and debit note operation."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update

from billing.money import is_supported_currency
from ledger import chart, compliance, unit_of_work
from ledger.accounts import AccountRow, AccountSpec, get_or_create_accounts
from ledger.db import insert_or_ignore
from ledger.entries import AccountRef, EntryRequest, PostingRequest
from ledger.invoices import proration_audit
from ledger.invoices.checks import (
    aware,
    aware_or_none,
    check_customer_tax,
    check_draft_lines,
    check_key,
    check_note_lines,
    check_positive,
    check_quote,
    check_text,
    draft_signature,
    line_signature,
)
from ledger.invoices.errors import (
    CreditExceedsRemaining,
    InvalidInvoiceInput,
    InvoiceIdempotencyConflict,
    InvoiceStateError,
    PaymentExceedsRemaining,
    QuoteMismatch,
)
from ledger.invoices.note_tax import (
    NoteComponent,
    NoteLineTax,
    credit_line,
    debit_line,
    rate_change_delta,
)
from ledger.invoices.proration_audit import ProrationAuditRecord, jsonable
from ledger.invoices.reads import (
    amounts,
    finalized_view,
    invoice_row,
    line_rows,
    line_states,
    load_invoice,
    load_note,
)
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
    invoice_writeoffs as _writeoffs,
)
from ledger.invoices.tables import (
    invoices as _inv,
)
from ledger.invoices.types import (
    CreditNoteView,
    CustomerTaxDetails,
    DebitNoteView,
    DraftLine,
    InvoiceStatus,
    InvoiceView,
    NoteLine,
)
from ledger.journal import post_entries
from ledger.models import AccountType
from ledger.unit_of_work import MAX_ATTEMPTS
from tax import TaxBehavior, TaxComponent, TaxQuote
from tax.rates import load_rate_table

T = TypeVar("T")

_NEW_ACCOUNTS = "dunwell_invoices_new_accounts"
_ACCOUNT_CACHE_LIMIT = 100_000

_NEXT_NUMBER = text(
    "INSERT INTO document_counters (issuer, series, year, last_number) "
    "VALUES (:issuer, :series, :year, 1) "
    "ON CONFLICT (issuer, series, year) "
    "DO UPDATE SET last_number = document_counters.last_number + 1 "
    "RETURNING last_number"
)
_SERIES_LABEL = {"invoice": "", "credit_note": "CN-", "debit_note": "DN-"}


def bad_debt(currency: str) -> AccountSpec:
    """Receivables written off as uncollectible (expense); recoveries credit it."""
    return AccountSpec(f"bad_debt:{currency}", AccountType.EXPENSE, currency)


def invoice_id_for(key: str) -> str:
    return "inv_" + hashlib.sha256(key.encode()).hexdigest()[:24]


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


class InvoiceStore:
    def __init__(
        self,
        engine: Engine,
        *,
        issuer: str = "dunwell",
        number_prefix: str = "DW",
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if not issuer or len(issuer) > 100:
            raise ValueError("issuer must be 1..100 characters")
        self.engine = engine
        self.issuer = issuer
        self.number_prefix = number_prefix
        self.max_attempts = max_attempts
        self._accounts: MutableMapping[AccountRef, AccountRow] = {}
        self._recorded_rate_tables: set[str] = set()
        self._packaged_version = load_rate_table().version

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
            return load_invoice(conn, write(conn))

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
            write(conn)
            return finalize(conn)

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
    ) -> Callable[[Connection], str]:
        """Check a draft request; the returned step writes it (or checks that the same
        request wrote it before) and returns the invoice id."""
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

        def write(conn: Connection) -> str:
            inserted = conn.execute(
                insert_or_ignore(conn, _inv)
                .values(
                    id=invoice_id,
                    idempotency_key=key,
                    issuer=self.issuer,
                    status=InvoiceStatus.DRAFT.value,
                    created_at=created_at,
                    **wanted,
                )
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(_inv.c.id)
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
                return invoice_id
            conn.execute(
                insert(_lines),
                [
                    {
                        "invoice_id": invoice_id,
                        "line_id": line.line_id,
                        "position": position,
                        "description": line.description,
                        "kind": str(line.kind),
                        "plan_id": line.plan_id,
                        "period_start": line.period_start,
                        "period_end": line.period_end,
                        "amount": line.amount,
                        "tax_behavior": TaxBehavior(line.tax_behavior).value,
                    }
                    for position, line in enumerate(lines)
                ],
            )
            return invoice_id

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
        return self._transact(
            self._finalizer(invoice_id, quote=quote, customer_tax=customer_tax, at=at)
        )

    def _finalizer(
        self,
        invoice_id: str,
        *,
        quote: TaxQuote,
        customer_tax: CustomerTaxDetails,
        at: datetime,
    ) -> Callable[[Connection], InvoiceView]:
        at = aware(at, "at")
        check_customer_tax(customer_tax)

        def work(conn: Connection) -> InvoiceView:
            row = invoice_row(conn, invoice_id, lock=True)
            if row.status != InvoiceStatus.DRAFT:
                return load_invoice(conn, invoice_id)
            lines = line_rows(conn, invoice_id)
            check_quote(quote, row.currency, lines)
            conn.execute(
                update(_lines)
                .where(_lines.c.invoice_id == invoice_id, _lines.c.line_id == bindparam("b_line"))
                .values(
                    amount_excluding_tax=bindparam("b_net"),
                    tax_amount=bindparam("b_tax"),
                    amount_including_tax=bindparam("b_gross"),
                ),
                [
                    {
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
            # The counter row is the one lock every finalization shares: take it last.
            number = self._next_number(conn, "invoice", at)
            status = InvoiceStatus.OPEN if total > 0 else InvoiceStatus.PAID
            conn.execute(
                update(_inv)
                .where(_inv.c.id == invoice_id)
                .values(
                    status=status.value,
                    status_changed_at=at,
                    number=number,
                    finalized_at=at,
                    subtotal=quote.subtotal_excluding_tax,
                    tax_total=quote.tax_total,
                    total=total,
                    tax_engine=quote.engine,
                    rate_table_version=quote.rate_table_version,
                    rounding_rule=quote.rounding_rule,
                    tax_jurisdiction=quote.jurisdiction,
                    tax_quote_at=quote.at,
                    customer_country=customer_tax.country.upper(),
                    customer_region=customer_tax.region,
                    customer_vat_id=customer_tax.vat_id,
                    customer_name=customer_tax.name,
                    customer_address=customer_tax.address_text,
                    tax_evidence=[asdict(e) for e in quote.evidence],
                    legal_mentions=list(quote.legal_mentions),
                    vat_check=None if quote.vat_check is None else jsonable(quote.vat_check),
                    ledger_entry_id=entry_id,
                )
            )
            return finalized_view(row, lines, quote, customer_tax, number, status, at)

        return work

    # -- payment and collection -----------------------------------------------------

    def mark_paid(
        self,
        invoice_id: str,
        *,
        payment_ref: str,
        amount: int,
        at: datetime,
        idempotency_key: str | None = None,
    ) -> InvoiceView:
        """Record a payment (partial payments allowed); the invoice is paid when nothing
        remains. Idempotent by ``idempotency_key`` (default: invoice id + payment_ref)."""
        record = self._payment_recorder(invoice_id, payment_ref, amount, at, idempotency_key)

        def work(conn: Connection) -> InvoiceView:
            record(conn)
            return load_invoice(conn, invoice_id)

        return self._transact(work)

    def record_payment(
        self,
        invoice_id: str,
        *,
        payment_ref: str,
        amount: int,
        at: datetime,
        idempotency_key: str | None = None,
    ) -> None:
        """``mark_paid`` for a caller that needs no view of the invoice afterwards (a
        renewal's charge): the same checks and writes, without reading the invoice back."""
        self._transact(self._payment_recorder(invoice_id, payment_ref, amount, at, idempotency_key))

    def _payment_recorder(
        self,
        invoice_id: str,
        payment_ref: str,
        amount: int,
        at: datetime,
        idempotency_key: str | None,
    ) -> Callable[[Connection], None]:
        check_text(payment_ref, "payment_ref", 200)
        check_positive(amount, "amount")
        at = aware(at, "at")
        key = idempotency_key or f"payment:{invoice_id}:{payment_ref}"
        check_key(key)

        def record(conn: Connection) -> None:
            row = invoice_row(conn, invoice_id, lock=True)
            seen = conn.execute(select(_payments).where(_payments.c.idempotency_key == key)).first()
            if seen is not None:
                if (seen.invoice_id, int(seen.amount), seen.payment_ref) != (
                    invoice_id,
                    amount,
                    payment_ref,
                ):
                    raise InvoiceIdempotencyConflict(f"payment key {key!r} was used differently")
                return
            status = InvoiceStatus(row.status)
            if status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.PAID):
                raise InvoiceStateError(f"invoice {invoice_id} is {status}; it cannot be paid")
            remaining = amounts(conn, invoice_id).remaining(int(row.total))
            if amount > remaining:
                raise PaymentExceedsRemaining(
                    f"payment of {amount} exceeds the {remaining} remaining on {row.number}"
                )
            recovery = status is InvoiceStatus.UNCOLLECTIBLE
            credited = (
                bad_debt(row.currency)
                if recovery
                else chart.accounts_receivable(row.customer_id, row.currency)
            )
            entry_id = self._post(
                conn,
                key=f"invoice:{invoice_id}:{key}",
                at=at,
                description=f"payment {payment_ref} of invoice {row.number}",
                currency=row.currency,
                moves=[(chart.gateway_clearing(row.currency), amount), (credited, -amount)],
                metadata={"invoice_id": invoice_id, "payment_ref": payment_ref},
            )
            conn.execute(
                insert(_payments).values(
                    invoice_id=invoice_id,
                    idempotency_key=key,
                    payment_ref=payment_ref,
                    amount=amount,
                    paid_at=at,
                    recovery=recovery,
                    ledger_entry_id=entry_id,
                )
            )
            if amount == remaining and status is not InvoiceStatus.PAID:
                self._set_status(conn, invoice_id, InvoiceStatus.PAID, at)

        return record

    def mark_uncollectible(self, invoice_id: str, *, at: datetime) -> InvoiceView:
        """Write the amount remaining off to ``bad_debt``; idempotent."""
        at = aware(at, "at")

        def work(conn: Connection) -> InvoiceView:
            row = invoice_row(conn, invoice_id, lock=True)
            if row.status == InvoiceStatus.UNCOLLECTIBLE:
                return load_invoice(conn, invoice_id)
            if row.status != InvoiceStatus.OPEN:
                raise InvoiceStateError(f"invoice {invoice_id} is {row.status}, not open")
            remaining = amounts(conn, invoice_id).remaining(int(row.total))
            entry_id = self._post(
                conn,
                key=f"invoice:{invoice_id}:written_off",
                at=at,
                description=f"invoice {row.number} written off as uncollectible",
                currency=row.currency,
                moves=[
                    (bad_debt(row.currency), remaining),
                    (chart.accounts_receivable(row.customer_id, row.currency), -remaining),
                ],
                metadata={"invoice_id": invoice_id},
            )
            conn.execute(
                insert(_writeoffs).values(
                    invoice_id=invoice_id,
                    amount=remaining,
                    written_off_at=at,
                    ledger_entry_id=entry_id,
                )
            )
            self._set_status(conn, invoice_id, InvoiceStatus.UNCOLLECTIBLE, at)
            return load_invoice(conn, invoice_id)

        return self._transact(work)

    # -- adjustments ----------------------------------------------------------------

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

    # -- reads ----------------------------------------------------------------------

    def get(self, invoice_id: str) -> InvoiceView:
        return self._read(lambda conn: load_invoice(conn, invoice_id))

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

    # -- proration audit ------------------------------------------------------------

    def record_proration(
        self,
        audit_record: Mapping[str, Any],
        *,
        key: str,
        invoice_id: str | None = None,
        taxed_lines: Sequence[Any] | None = None,
        at: datetime | None = None,
    ) -> ProrationAuditRecord:
        """Store one proration computation (``ProrationAudit.to_record()``) with the
        taxed lines; append-only and idempotent by ``key``."""
        pending = proration_audit.prepare(
            audit_record, key=key, invoice_id=invoice_id, taxed_lines=taxed_lines, at=at
        )
        return self._transact(lambda conn: proration_audit.store(conn, pending))

    def prorations(self, *, invoice_id: str) -> list[ProrationAuditRecord]:
        return self._read(lambda conn: proration_audit.for_invoice(conn, invoice_id))

    # -- internals ------------------------------------------------------------------

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

    def _next_number(self, conn: Connection, series: str, at: datetime) -> str:
        year = at.astimezone(UTC).year
        value = conn.execute(
            _NEXT_NUMBER, {"issuer": self.issuer, "series": series, "year": year}
        ).scalar_one()
        return f"{self.number_prefix}-{_SERIES_LABEL[series]}{year}-{int(value):06d}"

    def _post(
        self,
        conn: Connection,
        *,
        key: str,
        at: datetime,
        description: str,
        currency: str,
        moves: Sequence[tuple[AccountSpec, int]],
        metadata: Mapping[str, Any],
    ) -> int | None:
        """Post the non-zero moves (merged per account) as one entry; None if all are zero."""
        merged: dict[str, int] = defaultdict(int)
        specs = {}
        for spec, amount in moves:
            merged[spec.code] += amount
            specs[spec.code] = spec
        postings = [
            PostingRequest(code, amount, currency) for code, amount in merged.items() if amount
        ]
        if not postings:
            return None
        cache: MutableMapping[AccountRef, AccountRow] = self._accounts
        if any(code not in cache for code in merged):
            # Accounts created here exist for others only once this transaction commits:
            # they join the shared cache then (see _transact), never before.
            cache = {}
            for account in get_or_create_accounts(conn, [specs[c] for c in merged]):
                cache[account.code] = account
                cache[account.id] = account
            conn.info.setdefault(_NEW_ACCOUNTS, {}).update(cache)
        request = EntryRequest(
            idempotency_key=key,
            effective_at=at,
            description=description[:500],
            postings=postings,
            metadata=dict(metadata),
        )
        return post_entries(conn, [request], account_cache=cache)[0].id

    @staticmethod
    def _set_status(conn: Connection, invoice_id: str, status: InvoiceStatus, at: datetime) -> None:
        conn.execute(
            update(_inv)
            .where(_inv.c.id == invoice_id)
            .values(status=status.value, status_changed_at=at)
        )

    def _read(self, work: Callable[[Connection], T]) -> T:
        return unit_of_work.read(self.engine, work)

    def _transact(self, work: Callable[[Connection], T]) -> T:
        def tracked(conn: Connection) -> tuple[T, Any]:
            conn.info.pop(_NEW_ACCOUNTS, None)
            result = work(conn)
            return result, conn.info.pop(_NEW_ACCOUNTS, None)

        result, created = unit_of_work.transact(
            self.engine, tracked, max_attempts=self.max_attempts
        )
        # Only accounts from a committed transaction may enter the cache.
        if created and len(self._accounts) < _ACCOUNT_CACHE_LIMIT:
            self._accounts.update(created)
        return result


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
