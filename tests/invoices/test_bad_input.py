"""Every bad-input path raises a typed error and writes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from ledger.invoices import (
    CreditExceedsRemaining,
    CustomerTaxDetails,
    DraftLine,
    InvalidInvoiceInput,
    InvoiceError,
    InvoiceIdempotencyConflict,
    InvoiceNotFound,
    InvoiceStateError,
    InvoiceStore,
    NoteLine,
    PaymentExceedsRemaining,
    QuoteMismatch,
)
from tax import Address, TaxBehavior
from tests.invoices.conftest import T0, details_for, fresh, issue, quote_for

TABLES = (
    "invoices",
    "invoice_lines",
    "invoice_notes",
    "invoice_payments",
    "tax_line_records",
    "ledger_entries",
    "document_counters",
    "proration_audits",
)
NAIVE = datetime(2026, 3, 1, 12, 0)


def counts(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        out: dict[str, object] = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES
        }
        out["counters"] = conn.execute(
            text("SELECT issuer, series, year, last_number FROM document_counters ORDER BY 1, 2, 3")
        ).all()
    return out


def good_line(**changes: object) -> DraftLine:
    return replace(DraftLine("a", "Plan", 1_000), **changes)  # type: ignore[arg-type]


def draft_kwargs(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "key": fresh("inv"),
        "customer_id": fresh("cus"),
        "subscription_id": None,
        "currency": "EUR",
        "lines": [good_line()],
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    "changes",
    [
        {"key": ""},
        {"key": "k" * 201},
        {"customer_id": ""},
        {"currency": "EURO"},
        {"currency": "XXX"},
        {"lines": []},
        {"lines": [good_line(), good_line()]},
        {"lines": [good_line(amount=10.5)]},
        {"lines": [good_line(amount=True)]},
        {"lines": [good_line(amount=10**16)]},
        {"lines": [good_line(kind="gift")]},
        {"lines": [good_line(tax_behavior="sometimes")]},
        {"lines": [good_line(line_id="")]},
        {"lines": [good_line(description="")]},
        {"lines": [good_line(period_start=NAIVE)]},
        {"period_start": NAIVE},
        {"period_start": T0, "period_end": T0},
        {"lines": ["not a line"]},
    ],
)
def test_bad_drafts(store: InvoiceStore, engine: Engine, changes: dict[str, object]) -> None:
    before = counts(engine)
    with pytest.raises(InvalidInvoiceInput):
        store.create_draft(**draft_kwargs(**changes))  # type: ignore[arg-type]
    assert counts(engine) == before


def test_draft_key_reused_for_another_request(store: InvoiceStore, engine: Engine) -> None:
    kwargs = draft_kwargs()
    first = store.create_draft(**kwargs)  # type: ignore[arg-type]
    assert store.create_draft(**kwargs) == first  # type: ignore[arg-type]
    before = counts(engine)
    for changes in ({"currency": "USD"}, {"lines": [good_line(amount=999)]}):
        with pytest.raises(InvoiceIdempotencyConflict):
            store.create_draft(**{**kwargs, **changes})  # type: ignore[arg-type]
    assert counts(engine) == before


def _draft(store: InvoiceStore, *lines: DraftLine, currency: str = "EUR"):  # type: ignore[no-untyped-def]
    return store.create_draft(
        key=fresh("inv"),
        customer_id=fresh("cus"),
        subscription_id=None,
        currency=currency,
        lines=list(lines) or [good_line()],
    )


def test_quote_mismatches(store: InvoiceStore, engine: Engine) -> None:
    draft = _draft(store, good_line(), good_line(line_id="b", amount=500))
    good = quote_for(draft, Address("DE"), T0)
    other_amount = quote_for(
        _draft(store, good_line(amount=1_001), good_line(line_id="b", amount=500)),
        Address("DE"),
        T0,
    )
    inclusive = quote_for(
        _draft(
            store, good_line(tax_behavior=TaxBehavior.INCLUSIVE), good_line(line_id="b", amount=500)
        ),
        Address("DE"),
        T0,
    )
    one_line = quote_for(_draft(store), Address("DE"), T0)
    usd = quote_for(
        _draft(store, good_line(), good_line(line_id="b", amount=500), currency="USD"),
        Address("US", "NY"),
        T0,
    )
    bad_total = replace(good, tax_total=good.tax_total + 1)
    bad_line = replace(good, lines=(replace(good.lines[0], tax_amount=0), good.lines[1]))
    reordered = replace(good, lines=tuple(reversed(good.lines)))
    before = counts(engine)
    for quote in (other_amount, inclusive, one_line, usd, bad_total, bad_line, reordered, "quote"):
        with pytest.raises(QuoteMismatch):
            store.finalize(draft.id, quote=quote, customer_tax=details_for(Address("DE")), at=T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInvoiceInput):
        store.finalize(draft.id, quote=good, customer_tax=details_for(Address("DE")), at=NAIVE)
    for details in (CustomerTaxDetails("DEU"), "DE"):
        with pytest.raises(InvalidInvoiceInput):
            store.finalize(draft.id, quote=good, customer_tax=details, at=T0)  # type: ignore[arg-type]
    assert counts(engine) == before
    assert store.finalize(
        draft.id, quote=good, customer_tax=details_for(Address("DE")), at=T0
    ).number


def test_unknown_invoice(store: InvoiceStore, engine: Engine) -> None:
    before = counts(engine)
    missing = "inv_missing"
    quote = quote_for(_draft(store), Address("DE"), T0)
    before = counts(engine)
    calls = [
        lambda: store.get(missing),
        lambda: store.finalize(
            missing, quote=quote, customer_tax=details_for(Address("DE")), at=T0
        ),
        lambda: store.mark_paid(missing, payment_ref="pi", amount=1, at=T0),
        lambda: store.mark_uncollectible(missing, at=T0),
        lambda: store.void(missing, key=fresh("v"), reason="r", at=T0),
        lambda: store.credit_note(
            missing, key=fresh("c"), lines=[NoteLine("a", 1)], reason="r", at=T0
        ),
        lambda: store.debit_note(
            missing, key=fresh("d"), lines=[NoteLine("a", 1)], reason="r", at=T0
        ),
        lambda: store.delete_draft(missing),
    ]
    for call in calls:
        with pytest.raises(InvoiceNotFound):
            call()
    assert counts(engine) == before
    assert store.list_for_customer(fresh("cus")) == []


def test_state_errors(store: InvoiceStore, engine: Engine) -> None:
    draft = _draft(store)
    paid = issue(store, [good_line()])
    store.mark_paid(paid.id, payment_ref="pi", amount=paid.total, at=T0)
    before = counts(engine)
    for call in (
        lambda: store.mark_paid(draft.id, payment_ref="pi", amount=1, at=T0),
        lambda: store.mark_uncollectible(draft.id, at=T0),
        lambda: store.void(draft.id, key=fresh("v"), reason="r", at=T0),
        lambda: store.credit_note(
            draft.id, key=fresh("c"), lines=[NoteLine("a", 1)], reason="r", at=T0
        ),
        lambda: store.debit_note(
            draft.id, key=fresh("d"), lines=[NoteLine("a", 1)], reason="r", at=T0
        ),
        lambda: store.mark_uncollectible(paid.id, at=T0),
        lambda: store.void(paid.id, key=fresh("v"), reason="r", at=T0),
    ):
        with pytest.raises(InvoiceStateError):
            call()
    assert counts(engine) == before


def test_bad_notes_and_payments(store: InvoiceStore, engine: Engine) -> None:
    invoice = issue(store, [good_line(), good_line(line_id="neg", amount=-100, kind="one_off")])
    key = fresh("cn")
    store.credit_note(invoice.id, key=key, lines=[NoteLine("a", 10)], reason="r", at=T0)
    store.mark_paid(invoice.id, payment_ref="pi_1", amount=10, at=T0)
    before = counts(engine)
    cases: list[tuple[type[InvoiceError], object]] = [
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(invoice.id, key=fresh("c"), lines=[], reason="r", at=T0),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id, key=fresh("c"), lines=[NoteLine("a", 0)], reason="r", at=T0
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id, key=fresh("c"), lines=[NoteLine("a", -5)], reason="r", at=T0
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id, key=fresh("c"), lines=[NoteLine("a", 1.5)], reason="r", at=T0
            ),
        ),  # type: ignore[arg-type]
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id,
                key=fresh("c"),
                lines=[NoteLine("a", 1), NoteLine("a", 1)],
                reason="r",
                at=T0,
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id, key=fresh("c"), lines=[NoteLine("zzz", 1)], reason="r", at=T0
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id, key=fresh("c"), lines=[NoteLine("neg", 1)], reason="r", at=T0
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.debit_note(
                invoice.id, key=fresh("d"), lines=[NoteLine("neg", 1)], reason="r", at=T0
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id, key=fresh("c"), lines=[NoteLine("a", 1)], reason="", at=T0
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id, key=fresh("c"), lines=[NoteLine("a", 1)], reason="r", at=NAIVE
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.credit_note(
                invoice.id, key="", lines=[NoteLine("a", 1)], reason="r", at=T0
            ),
        ),
        (
            CreditExceedsRemaining,
            lambda: store.credit_note(
                invoice.id, key=fresh("c"), lines=[NoteLine("a", 991)], reason="r", at=T0
            ),
        ),
        (
            InvoiceIdempotencyConflict,
            lambda: store.debit_note(
                invoice.id, key=key, lines=[NoteLine("a", 1)], reason="r", at=T0
            ),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.mark_paid(invoice.id, payment_ref="pi", amount=0, at=T0),
        ),
        (
            InvalidInvoiceInput,
            lambda: store.mark_paid(invoice.id, payment_ref="pi", amount=1, at=NAIVE),
        ),
        (InvalidInvoiceInput, lambda: store.mark_paid(invoice.id, payment_ref="", amount=1, at=T0)),
        (
            PaymentExceedsRemaining,
            lambda: store.mark_paid(invoice.id, payment_ref="pi_2", amount=10_000, at=T0),
        ),
        (
            InvoiceIdempotencyConflict,
            lambda: store.mark_paid(invoice.id, payment_ref="pi_1", amount=11, at=T0),
        ),
        # record_payment: the same checks as mark_paid, without the view afterwards.
        (
            InvalidInvoiceInput,
            lambda: store.record_payment(invoice.id, payment_ref="pi", amount=0, at=T0),
        ),
        (
            PaymentExceedsRemaining,
            lambda: store.record_payment(invoice.id, payment_ref="pi_2", amount=10_000, at=T0),
        ),
        (
            InvoiceIdempotencyConflict,
            lambda: store.record_payment(invoice.id, payment_ref="pi_1", amount=11, at=T0),
        ),
        (InvalidInvoiceInput, lambda: store.mark_uncollectible(invoice.id, at=NAIVE)),
        (InvalidInvoiceInput, lambda: store.record_proration({"no": "rule"}, key=fresh("p"))),
    ]
    for error, call in cases:
        with pytest.raises(error):
            call()  # type: ignore[operator]
    assert counts(engine) == before


def test_rate_change_inputs(store: InvoiceStore) -> None:
    invoice = issue(store, [good_line()])
    quote = quote_for(invoice, Address("DE"), T0)
    for kwargs in (
        {"change_at": NAIVE, "period_start": T0, "period_end": T0 + timedelta(days=1)},
        {
            "change_at": T0 - timedelta(seconds=1),
            "period_start": T0,
            "period_end": T0 + timedelta(days=1),
        },
    ):
        with pytest.raises(InvalidInvoiceInput):
            store.rate_change_adjustment(invoice.id, new_quote=quote, **kwargs)  # type: ignore[arg-type]
    usd = quote_for(_draft(store, currency="USD"), Address("US", "NY"), T0)
    with pytest.raises(QuoteMismatch):
        store.rate_change_adjustment(
            invoice.id,
            new_quote=usd,
            change_at=T0,
            period_start=T0,
            period_end=datetime(2026, 4, 1, tzinfo=UTC),
        )
