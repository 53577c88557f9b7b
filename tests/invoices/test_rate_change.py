"""A rate change inside a billed period: the invoice keeps its frozen rate; a later
note corrects the seconds after the change (Germany 19 % -> 16 % on 2020-07-01)."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from ledger.invoices import (
    CreditNoteView,
    DebitNoteView,
    DraftLine,
    InvalidInvoiceInput,
    InvoiceStore,
    QuoteMismatch,
)
from tax import Address, TaxBehavior
from tests.invoices.conftest import fresh, issue, quote_for

START = datetime(2020, 6, 15, 9, 30, 7, tzinfo=UTC)
END = datetime(2020, 7, 15, 9, 30, 7, tzinfo=UTC)
CUT = datetime(2020, 7, 1, tzinfo=UTC)  # the 16 % rate applies from this instant


def exact_delta(taxable: int, old_ppm: int, new_ppm: int, after: int, period: int) -> int:
    value = Fraction(taxable * (new_ppm - old_ppm) * after, 1_000_000 * period)
    magnitude = abs(value)
    rounded = int(magnitude + Fraction(1, 2))  # half-up on the magnitude
    return rounded if value >= 0 else -rounded


def test_rate_cut_gives_a_prorated_credit_note(store: InvoiceStore) -> None:
    lines = [
        DraftLine("a", "Plan", 123_457),
        DraftLine("b", "Seats", 50_000, TaxBehavior.INCLUSIVE),
    ]
    invoice = issue(store, lines, at=START)
    assert all(c.rate_ppm == 190_000 for line in invoice.lines for c in line.components)
    new_quote = quote_for(invoice, Address("DE"), CUT)
    note = store.rate_change_adjustment(
        invoice.id,
        new_quote=new_quote,
        change_at=CUT,
        period_start=START,
        period_end=END,
        key=fresh("rc"),
        at=END,
    )
    assert isinstance(note, CreditNoteView) and note.purpose == "rate_change"
    period = int((END - START).total_seconds())
    after = int((END - CUT).total_seconds())
    assert (period, after) == (30 * 86_400, 14 * 86_400 + 9 * 3_600 + 30 * 60 + 7)
    expected = {
        line.line_id: -exact_delta(
            line.components[0].taxable_amount, 190_000, 160_000, after, period
        )
        for line in invoice.lines
    }
    assert {line.invoice_line_id: line.tax_amount for line in note.lines} == expected
    assert note.subtotal == 0 and note.tax_total == sum(expected.values()) == note.total
    # The invoice itself keeps its frozen tax.
    assert store.get(invoice.id).tax_total == invoice.tax_total


def test_rate_rise_gives_a_debit_note_and_no_change_gives_none(store: InvoiceStore) -> None:
    start = datetime(2020, 12, 20, tzinfo=UTC)
    end = datetime(2021, 1, 20, tzinfo=UTC)
    cut = datetime(2021, 1, 1, tzinfo=UTC)
    invoice = issue(store, [DraftLine("a", "Plan", 99_999)], at=start)
    note = store.rate_change_adjustment(
        invoice.id,
        new_quote=quote_for(invoice, Address("DE"), cut),
        change_at=cut,
        period_start=start,
        period_end=end,
        key=fresh("rc"),
        at=end,
    )
    assert isinstance(note, DebitNoteView)
    assert note.total == exact_delta(99_999, 160_000, 190_000, 19 * 86_400, 31 * 86_400)
    same = store.rate_change_adjustment(
        invoice.id,
        new_quote=quote_for(invoice, Address("DE"), start),
        change_at=cut,
        period_start=start,
        period_end=end,
        key=fresh("rc"),
        at=end,
    )
    assert same is None


def test_rate_change_bad_input(store: InvoiceStore) -> None:
    invoice = issue(store, [DraftLine("a", "Plan", 1_000)], at=START)
    with pytest.raises(InvalidInvoiceInput):
        store.rate_change_adjustment(
            invoice.id,
            new_quote=quote_for(invoice, Address("DE"), CUT),
            change_at=END,
            period_start=START,
            period_end=END,
        )
    with pytest.raises(QuoteMismatch):
        store.rate_change_adjustment(
            invoice.id,
            new_quote=quote_for(invoice, Address("FR"), CUT),
            change_at=CUT,
            period_start=START,
            period_end=END,
        )
