"""Invoice lifecycle on both backends: draft, finalize, pay, write off, and the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from ledger import chart
from ledger.invoices import (
    DraftLine,
    InvoiceStateError,
    InvoiceStatus,
    InvoiceStore,
    NoteLine,
    bad_debt,
)
from ledger.posting import Ledger
from tax import Address, TaxBehavior, TaxReason
from tests.invoices.conftest import T0, details_for, fresh, issue, quote_for


def balance(engine: Engine, code: str) -> int:
    return Ledger(engine).balance(code).amount


def test_draft_finalize_pay(store: InvoiceStore, engine: Engine) -> None:
    customer = fresh("cus")
    draft = store.create_draft(
        key=fresh("inv"),
        customer_id=customer,
        subscription_id="sub_1",
        currency="EUR",
        lines=[DraftLine("base", "Pro plan", 10_000), DraftLine("seat", "Seats", 2_500)],
        period_start=T0,
        period_end=T0 + timedelta(days=31),
    )
    assert draft.status is InvoiceStatus.DRAFT and draft.number is None
    assert draft.id.startswith("inv_") and draft.subtotal == 12_500

    quote = quote_for(draft, Address("DE"), T0)
    invoice = store.finalize(draft.id, quote=quote, customer_tax=details_for(Address("DE")), at=T0)
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.number is not None and invoice.number.startswith("DW-2026-")
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (12_500, 2_375, 14_875)
    assert invoice.amount_remaining == 14_875 and invoice.finalized_at == T0
    assert [line.tax_amount for line in invoice.lines] == [1_900, 475]
    assert invoice.lines[0].components[0].rate_ppm == 190_000
    assert invoice.customer_tax == details_for(Address("DE"))
    assert invoice.rate_table_version == quote.rate_table_version

    receivable = chart.accounts_receivable(customer, "EUR").code
    assert balance(engine, receivable) == 14_875

    # Finalizing again returns the same invoice and posts nothing more.
    assert (
        store.finalize(
            draft.id,
            quote=quote,
            customer_tax=details_for(Address("DE")),
            at=T0 + timedelta(hours=1),
        )
        == invoice
    )
    assert balance(engine, receivable) == 14_875

    partly = store.mark_paid(invoice.id, payment_ref="pi_1", amount=4_875, at=T0)
    assert partly.status is InvoiceStatus.OPEN and partly.amount_remaining == 10_000
    paid = store.mark_paid(invoice.id, payment_ref="pi_2", amount=10_000, at=T0)
    assert paid.status is InvoiceStatus.PAID and paid.amount_paid == 14_875
    assert paid.amount_remaining == 0
    # The same payment again changes nothing.
    assert store.mark_paid(invoice.id, payment_ref="pi_2", amount=10_000, at=T0) == paid
    assert balance(engine, receivable) == 0
    assert store.list_for_customer(customer) == [paid]


def test_record_payment_pays_like_mark_paid_and_once(store: InvoiceStore, engine: Engine) -> None:
    invoice = issue(store, [DraftLine("a", "Plan", 1_000)])
    receivable = chart.accounts_receivable(invoice.customer_id, "EUR").code
    before = balance(engine, receivable)
    assert store.record_payment(invoice.id, payment_ref="pi_r", amount=invoice.total, at=T0) is None
    store.record_payment(invoice.id, payment_ref="pi_r", amount=invoice.total, at=T0)  # a retry
    paid = store.get(invoice.id)
    assert paid.status is InvoiceStatus.PAID and paid.amount_paid == invoice.total
    assert balance(engine, receivable) == before - invoice.total, "posted once"
    assert store.mark_paid(invoice.id, payment_ref="pi_r", amount=invoice.total, at=T0) == paid


def test_ledger_entry_of_finalization(store: InvoiceStore, engine: Engine) -> None:
    before_revenue = balance(engine, "revenue:CAD") if _exists(engine, "revenue:CAD") else 0
    before_gst = (
        balance(engine, "tax_payable:CA:CAD") if _exists(engine, "tax_payable:CA:CAD") else 0
    )
    before_qst = (
        balance(engine, "tax_payable:CA-QC:CAD") if _exists(engine, "tax_payable:CA-QC:CAD") else 0
    )
    invoice = issue(
        store, [DraftLine("a", "Plan", 10_000)], address=Address("CA", "QC"), currency="CAD"
    )
    assert invoice.tax_total == 500 + 998  # GST 5 %, QST 9.975 % half-up
    assert balance(engine, "revenue:CAD") - before_revenue == -10_000
    assert balance(engine, "tax_payable:CA:CAD") - before_gst == -500
    assert balance(engine, "tax_payable:CA-QC:CAD") - before_qst == -998
    assert Ledger(engine).trial_balance().balanced


def _exists(engine: Engine, code: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(text("SELECT 1 FROM ledger_accounts WHERE code = :c"), {"c": code}).first()
            is not None
        )


def test_jpy_and_tax_inclusive(store: InvoiceStore) -> None:
    jpy = issue(
        store,
        [DraftLine("a", "Plan", 1_234), DraftLine("b", "Seats", 999, TaxBehavior.INCLUSIVE)],
        address=Address("JP"),
        currency="JPY",
    )
    # 10 % JCT: 123.4 -> 123; inclusive 999 = 908 + 91 (999 * 10 / 110 = 90.8 -> 91).
    assert [(line.amount_excluding_tax, line.tax_amount) for line in jpy.lines] == [
        (1_234, 123),
        (908, 91),
    ]
    assert jpy.total == 1_234 + 123 + 999
    eur = issue(store, [DraftLine("a", "Plan", 11_900, TaxBehavior.INCLUSIVE)])
    assert (eur.subtotal, eur.tax_total, eur.total) == (10_000, 1_900, 11_900)


def test_negative_total_goes_to_customer_credit(store: InvoiceStore, engine: Engine) -> None:
    customer = fresh("cus")
    invoice = issue(
        store,
        [
            DraftLine("credit", "Unused Pro", -8_000, kind="proration_credit", plan_id="pro"),
            DraftLine("charge", "Remaining Basic", 3_000, kind="proration_charge", plan_id="basic"),
        ],
        customer_id=customer,
    )
    assert invoice.total == -5_950 and invoice.status is InvoiceStatus.PAID
    assert invoice.amount_remaining == 0
    assert balance(engine, chart.customer_credit(customer, "EUR").code) == -5_950
    assert not _exists(engine, chart.accounts_receivable(customer, "EUR").code)
    with pytest.raises(InvoiceStateError):
        store.void(invoice.id, key=fresh("void"), reason="no", at=T0)


def test_zero_total_is_paid_at_finalization(store: InvoiceStore) -> None:
    invoice = issue(
        store, [DraftLine("a", "Plan", 1_000), DraftLine("b", "Discount", -1_000, kind="one_off")]
    )
    assert invoice.total == 0 and invoice.status is InvoiceStatus.PAID


def test_uncollectible_writes_off_and_recovery(store: InvoiceStore, engine: Engine) -> None:
    customer = fresh("cus")
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)], customer_id=customer)
    store.mark_paid(invoice.id, payment_ref="pi_part", amount=1_900, at=T0)
    before = balance(engine, bad_debt("EUR").code) if _exists(engine, "bad_debt:EUR") else 0
    written = store.mark_uncollectible(invoice.id, at=T0 + timedelta(days=60))
    assert written.status is InvoiceStatus.UNCOLLECTIBLE
    assert store.mark_uncollectible(invoice.id, at=T0 + timedelta(days=61)) == written
    assert balance(engine, bad_debt("EUR").code) - before == 10_000
    assert balance(engine, chart.accounts_receivable(customer, "EUR").code) == 0
    with pytest.raises(InvoiceStateError):
        store.credit_note(invoice.id, key=fresh("cn"), lines=[NoteLine("a", 1)], reason="x", at=T0)
    recovered = store.mark_paid(invoice.id, payment_ref="pi_late", amount=10_000, at=T0)
    assert recovered.status is InvoiceStatus.PAID
    assert balance(engine, bad_debt("EUR").code) - before == 0
    assert Ledger(engine).trial_balance().balanced


def test_reverse_charge_invoice_carries_the_legal_mention(store: InvoiceStore) -> None:
    invoice = issue(
        store, [DraftLine("a", "Plan", 10_000)], address=Address("FR"), vat_id="FR40303265045"
    )
    assert invoice.tax_total == 0
    assert invoice.lines[0].components[0].reason is TaxReason.REVERSE_CHARGE
    assert any("Article 196" in mention for mention in invoice.legal_mentions)
    assert invoice.customer_tax is not None and invoice.customer_tax.vat_id == "FR40303265045"


def test_draft_may_be_deleted_but_not_a_finalized_invoice(store: InvoiceStore) -> None:
    draft = store.create_draft(
        key=fresh("inv"),
        customer_id=fresh("cus"),
        subscription_id=None,
        currency="EUR",
        lines=[DraftLine("a", "Plan", 100)],
    )
    store.delete_draft(draft.id)
    invoice = issue(store, [DraftLine("a", "Plan", 100)])
    with pytest.raises(InvoiceStateError):
        store.delete_draft(invoice.id)


def test_notes_for_customer(store: InvoiceStore) -> None:
    customer = fresh("cus")
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)], customer_id=customer)
    credit = store.credit_note(
        invoice.id, key=fresh("cn"), lines=[NoteLine("a", 1_000)], reason="goodwill", at=T0
    )
    debit = store.debit_note(
        invoice.id,
        key=fresh("dn"),
        lines=[NoteLine("a", 500)],
        reason="usage",
        at=T0 + timedelta(seconds=1),
    )
    assert credit.number.startswith("DW-CN-2026-") and debit.number.startswith("DW-DN-2026-")
    assert store.notes_for_customer(customer) == [credit, debit]
    assert (debit.subtotal, debit.tax_total, debit.total) == (500, 95, 595)
    view = store.get(invoice.id)
    assert view.amount_credited == 1_190 and view.amount_debited == 595
    assert view.amount_remaining == 11_900 - 1_190 + 595
