"""Credit and debit notes: frozen-rate tax, exact reversal, caps, void, concurrency."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from ledger import chart
from ledger.compliance import ComplianceLedger
from ledger.invoices import (
    CreditExceedsRemaining,
    CreditNoteView,
    DraftLine,
    InvoiceStateError,
    InvoiceStatus,
    InvoiceStore,
    NoteLine,
)
from ledger.posting import Ledger
from tax import Address, TaxBehavior
from tax.rounding import div_half_up
from tests.invoices.conftest import T0, fresh, issue


def half_up(numerator: int, denominator: int) -> int:
    return div_half_up(numerator, denominator)


def test_credit_tax_uses_the_frozen_rate_not_todays(store: InvoiceStore) -> None:
    # Finalized in June 2020 at 19 %; credited in August 2020, when Germany charged 16 %.
    june = datetime(2020, 6, 20, tzinfo=UTC)
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)], at=june)
    assert invoice.tax_total == 1_900
    note = store.credit_note(
        invoice.id,
        key=fresh("cn"),
        lines=[NoteLine("a", 3_333)],
        reason="goodwill",
        at=datetime(2020, 8, 3, tzinfo=UTC),
    )
    component = note.lines[0].components[0]
    assert component.rate_ppm == 190_000
    assert note.tax_total == half_up(3_333 * 190_000, 1_000_000) == 633
    assert note.total == 3_966


def test_successive_credits_reverse_exactly_what_was_charged(store: InvoiceStore) -> None:
    invoice = issue(
        store,
        [
            DraftLine("a", "Plan", 9_999),
            DraftLine("b", "Seats", 3_337, TaxBehavior.INCLUSIVE),
        ],
        address=Address("CA", "QC"),
        currency="CAD",
    )
    charged = {
        (line.line_id, c.jurisdiction): c.tax_amount
        for line in invoice.lines
        for c in line.components
    }
    notes = []
    for amounts in ([("a", 3_333), ("b", 1_001)], [("a", 3_333)], [("b", 1_000)]):
        notes.append(
            store.credit_note(
                invoice.id,
                key=fresh("cn"),
                lines=[NoteLine(i, a) for i, a in amounts],
                reason="partial",
                at=T0,
            )
        )
    nets = {line.line_id: line.amount_excluding_tax for line in invoice.lines}
    credited_net = {"a": 6_666, "b": 2_001}
    rest = [NoteLine(i, (nets[i] or 0) - credited_net[i]) for i in ("a", "b")]
    notes.append(store.credit_note(invoice.id, key=fresh("cn"), lines=rest, reason="rest", at=T0))
    credited: dict[tuple[str, str], int] = {}
    for note in notes:
        for line in note.lines:
            for c in line.components:
                key = (line.invoice_line_id, c.jurisdiction)
                credited[key] = credited.get(key, 0) + c.tax_amount
    assert credited == charged
    final = store.get(invoice.id)
    assert final.amount_credited == invoice.total and final.amount_remaining == 0
    assert final.status is InvoiceStatus.PAID  # fully credited before payment
    with pytest.raises(CreditExceedsRemaining):
        store.credit_note(invoice.id, key=fresh("cn"), lines=[NoteLine("a", 1)], reason="x", at=T0)


def test_credit_never_exceeds_a_line_or_the_invoice(store: InvoiceStore, engine: Engine) -> None:
    invoice = issue(
        store,
        [
            DraftLine("charge", "Basic", 6_000, kind="proration_charge"),
            DraftLine("credit", "Unused", -4_000, kind="proration_credit"),
        ],
    )
    assert invoice.total == 2_380
    with pytest.raises(CreditExceedsRemaining):
        store.credit_note(
            invoice.id, key=fresh("cn"), lines=[NoteLine("charge", 6_001)], reason="x", at=T0
        )
    # Within the line (6,000) but more than the invoice total (2,380).
    with pytest.raises(CreditExceedsRemaining):
        store.credit_note(
            invoice.id, key=fresh("cn"), lines=[NoteLine("charge", 5_000)], reason="x", at=T0
        )
    assert store.notes_for_customer(invoice.customer_id) == []
    ok = store.credit_note(
        invoice.id, key=fresh("cn"), lines=[NoteLine("charge", 2_000)], reason="x", at=T0
    )
    assert ok.total == 2_380 and store.get(invoice.id).amount_remaining == 0


def test_credit_after_payment_goes_to_customer_credit(store: InvoiceStore, engine: Engine) -> None:
    customer = fresh("cus")
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)], customer_id=customer)
    store.mark_paid(invoice.id, payment_ref="pi", amount=8_000, at=T0)
    note = store.credit_note(
        invoice.id, key=fresh("cn"), lines=[NoteLine("a", 5_000)], reason="x", at=T0
    )
    assert note.total == 5_950
    assert (note.receivable_amount, note.customer_credit_amount) == (3_900, 2_050)
    ledger = Ledger(engine)
    assert ledger.balance(chart.accounts_receivable(customer, "EUR").code).amount == 0
    assert ledger.balance(chart.customer_credit(customer, "EUR").code).amount == -2_050
    view = store.get(invoice.id)
    assert view.status is InvoiceStatus.PAID and view.amount_remaining == 0


def test_void_goes_through_a_credit_note(store: InvoiceStore, engine: Engine) -> None:
    customer = fresh("cus")
    invoice = issue(
        store,
        [DraftLine("a", "Plan", 10_000), DraftLine("b", "Credit", -1_000, kind="one_off")],
        customer_id=customer,
    )
    store.credit_note(invoice.id, key=fresh("cn"), lines=[NoteLine("a", 1_000)], reason="x", at=T0)
    key = fresh("void")
    note = store.void(invoice.id, key=key, reason="cancelled", at=T0)
    assert isinstance(note, CreditNoteView) and note.purpose == "void"
    assert note.total == 10_710 - 1_190
    assert store.void(invoice.id, key=key, reason="cancelled", at=T0) == note
    view = store.get(invoice.id)
    assert view.status is InvoiceStatus.VOID and view.amount_remaining == 0
    assert Ledger(engine).balance(chart.accounts_receivable(customer, "EUR").code).amount == 0
    # Per-line tax of the invoice is fully reversed in the compliance records.
    records = ComplianceLedger(engine).tax_line_records(invoice_id=invoice.id)
    assert sum(r.tax_amount for r in records) == 0
    with pytest.raises(InvoiceStateError):
        store.void(invoice.id, key=fresh("void"), reason="again", at=T0)


def test_void_refused_with_payments(store: InvoiceStore) -> None:
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)])
    store.mark_paid(invoice.id, payment_ref="pi", amount=100, at=T0)
    with pytest.raises(InvoiceStateError):
        store.void(invoice.id, key=fresh("void"), reason="x", at=T0)
    assert store.notes_for_customer(invoice.customer_id) == []


def test_credit_note_is_idempotent_by_key(store: InvoiceStore) -> None:
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)])
    key = fresh("cn")
    first = store.credit_note(invoice.id, key=key, lines=[NoteLine("a", 100)], reason="x", at=T0)
    again = store.credit_note(invoice.id, key=key, lines=[NoteLine("a", 100)], reason="x", at=T0)
    assert again == first and store.get(invoice.id).amount_credited == first.total


def test_concurrent_credits_never_exceed_the_line(pg_engine: Engine) -> None:
    store = InvoiceStore(pg_engine)
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)])
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        try:
            store.credit_note(
                invoice.id, key=fresh("cn"), lines=[NoteLine("a", 3_000)], reason="x", at=T0
            )
            outcomes.append("ok")
        except CreditExceedsRemaining:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 5
    view = store.get(invoice.id)
    assert view.amount_credited == 3 * 3_570 and view.amount_remaining == 11_900 - 3 * 3_570


attempts = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 6_000), st.booleans()),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(attempts=attempts)
def test_property_credits_stay_within_creditable(
    _engines: dict[str, Engine], attempts: list[tuple[str, int, bool]]
) -> None:
    store = InvoiceStore(_engines["sqlite"])
    invoice = issue(
        store,
        [
            DraftLine("a", "Plan", 5_003),
            DraftLine("b", "Seats", 4_001, TaxBehavior.INCLUSIVE),
            DraftLine("c", "Unused", -2_000, kind="proration_credit"),
        ],
        address=Address("CA", "QC"),
        currency="CAD",
    )
    nets = {line.line_id: line.amount_excluding_tax or 0 for line in invoice.lines}
    remaining = dict(nets)
    for line_id, amount, debit in attempts:
        if debit and nets[line_id] > 0:
            store.debit_note(
                invoice.id, key=fresh("dn"), lines=[NoteLine(line_id, amount)], reason="d", at=T0
            )
            remaining[line_id] += amount
            continue
        view = store.get(invoice.id)
        try:
            note = store.credit_note(
                invoice.id, key=fresh("cn"), lines=[NoteLine(line_id, amount)], reason="c", at=T0
            )
        except CreditExceedsRemaining as exc:
            if amount > remaining[line_id] or nets[line_id] <= 0:
                continue
            # Within the line, refused on the invoice total: the credit with its tax
            # must exceed exactly what is left creditable.
            found = re.search(r"credit of (\d+) exceeds the (-?\d+) creditable", str(exc))
            assert found, exc
            gross, creditable = int(found[1]), int(found[2])
            assert gross >= amount and gross > creditable
            assert creditable == view.total + view.amount_debited - view.amount_credited
            continue
        except Exception as exc:  # only a negative line may refuse otherwise
            assert nets[line_id] <= 0, exc
            continue
        assert amount <= remaining[line_id]
        assert note.total <= view.total + view.amount_debited - view.amount_credited
        remaining[line_id] -= amount
    view = store.get(invoice.id)
    assert view.amount_credited <= view.total + view.amount_debited
    assert 0 <= view.amount_remaining
    if view.status is InvoiceStatus.OPEN:
        store.void(invoice.id, key=fresh("void"), reason="end", at=T0 + timedelta(seconds=1))
    records = ComplianceLedger(_engines["sqlite"]).tax_line_records(invoice_id=invoice.id)
    if store.get(invoice.id).status is InvoiceStatus.VOID:
        assert sum(r.tax_amount for r in records) == 0
