"""``InvoiceStore.issue``: draft and finalize in one transaction, on both backends."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select

from ledger import chart
from ledger.invoices import (
    DraftLine,
    InvoiceIdempotencyConflict,
    InvoiceStatus,
    InvoiceStore,
    QuoteMismatch,
)
from ledger.invoices.tables import invoices as invoices_table
from ledger.posting import Ledger
from tax import TaxableLine, TaxBehavior, TaxCustomer, TaxQuote
from tests.invoices.conftest import GERMANY, REGISTRATIONS, T0, TAX_ENGINE, details_for, fresh

LINES = [DraftLine("base", "Pro plan", 10_000), DraftLine("seat", "Seats", 2_500)]


def quote(lines: list[DraftLine] = LINES) -> TaxQuote:
    taxable = [
        TaxableLine(line.line_id, line.amount, "EUR", TaxBehavior.EXCLUSIVE) for line in lines
    ]
    return TAX_ENGINE.quote(taxable, TaxCustomer(GERMANY), REGISTRATIONS, T0)


def issue(store: InvoiceStore, key: str, customer: str, **overrides: object) -> object:
    request: dict[str, object] = {
        "key": key,
        "customer_id": customer,
        "subscription_id": "sub_1",
        "currency": "EUR",
        "lines": LINES,
        "period_start": T0,
        "period_end": T0 + timedelta(days=31),
        "quote": quote(),
        "customer_tax": details_for(GERMANY),
        "at": T0,
    }
    request.update(overrides)
    return store.issue(**request)  # type: ignore[arg-type]


def invoices_of(engine: Engine, customer: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(invoices_table.c.customer_id == customer)
        return int(conn.execute(query).scalar_one())


def test_issue_is_draft_then_finalize(store: InvoiceStore, engine: Engine) -> None:
    customer = fresh("cus")
    invoice = store.issue(
        key=fresh("inv"),
        customer_id=customer,
        subscription_id="sub_1",
        currency="EUR",
        lines=LINES,
        period_start=T0,
        period_end=T0 + timedelta(days=31),
        quote=quote(),
        customer_tax=details_for(GERMANY),
        at=T0,
    )
    assert invoice.status is InvoiceStatus.OPEN and invoice.finalized_at == T0
    assert invoice.number is not None and invoice.number.startswith("DW-2026-")
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (12_500, 2_375, 14_875)
    assert [line.tax_amount for line in invoice.lines] == [1_900, 475]
    assert store.get(invoice.id) == invoice
    receivable = chart.accounts_receivable(customer, "EUR").code
    assert Ledger(engine).balance(receivable).amount == 14_875


def test_issuing_again_returns_the_same_invoice_and_posts_nothing(
    store: InvoiceStore, engine: Engine
) -> None:
    customer, key = fresh("cus"), fresh("inv")
    first = issue(store, key, customer)
    again = issue(store, key, customer)
    assert again == first
    receivable = chart.accounts_receivable(customer, "EUR").code
    assert Ledger(engine).balance(receivable).amount == 14_875
    assert invoices_of(engine, customer) == 1


def test_a_key_reused_for_another_request_is_refused(store: InvoiceStore, engine: Engine) -> None:
    customer, key = fresh("cus"), fresh("inv")
    first = issue(store, key, customer)
    other = [DraftLine("base", "Pro plan", 20_000)]
    with pytest.raises(InvoiceIdempotencyConflict):
        issue(store, key, customer, lines=other, quote=quote(other))
    assert store.get(first.id) == first  # type: ignore[attr-defined]


def test_a_failed_finalization_leaves_no_draft_behind(store: InvoiceStore, engine: Engine) -> None:
    customer = fresh("cus")
    wrong = quote([DraftLine("base", "Pro plan", 10_000)])  # the seat line is missing
    with pytest.raises(QuoteMismatch):
        issue(store, fresh("inv"), customer, quote=wrong)
    assert invoices_of(engine, customer) == 0
    receivable = chart.accounts_receivable(customer, "EUR").code
    assert receivable not in {a.code for a in Ledger(engine).trial_balance().accounts}


def test_the_issued_invoice_is_what_reading_it_back_gives(store: InvoiceStore) -> None:
    """``issue`` builds its answer from what it just wrote, without reading the invoice
    back: the answer must be what a read gives, times normalized to UTC included."""
    berlin = timezone(timedelta(hours=2))
    start = T0.astimezone(berlin)
    lines = [
        DraftLine(
            "pro:period",
            "Pro plan",
            10_000,
            kind="subscription",
            plan_id="pro-monthly",
            period_start=start,
            period_end=start + timedelta(days=30),
        ),
        DraftLine("credit", "Unused time", -2_000, kind="proration_credit"),
    ]
    invoice = issue(store, fresh("inv"), fresh("cus"), lines=lines, quote=quote(lines))
    assert invoice == store.get(invoice.id)  # type: ignore[attr-defined]
    (period_line, _) = invoice.lines  # type: ignore[attr-defined]
    assert period_line.period_start == T0 and period_line.period_start.tzinfo == UTC
