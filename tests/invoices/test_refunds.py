"""Refunds in the invoice store: a credit note at the frozen rates and a refund entry,
once per gateway refund; reservations that cannot together exceed what was paid; and
every refusal writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from ledger import chart
from ledger.invoices import (
    DraftLine,
    InvalidInvoiceInput,
    InvoiceIdempotencyConflict,
    InvoiceNotFound,
    InvoiceStateError,
    InvoiceStore,
)
from ledger.invoices.note_tax import LineState, refund_lines
from ledger.invoices.refund_tables import invoice_refunds
from ledger.invoices.refunds import RefundExceedsRefundable
from ledger.invoices.tables import invoice_notes
from ledger.models import entries_table
from ledger.posting import Ledger
from tax import Address, TaxBehavior, TaxComponent, TaxReason, TaxType
from tests.invoices.conftest import T0, fresh, issue

LATER = T0 + timedelta(days=3)


def paid_invoice(store: InvoiceStore, lines: list[DraftLine], **kw: object) -> tuple[str, str]:
    invoice = issue(store, lines, **kw)  # type: ignore[arg-type]
    ref = fresh("pi")
    store.mark_paid(invoice.id, payment_ref=ref, amount=invoice.total, at=T0)
    return invoice.id, ref


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            int(conn.execute(select(func.count()).select_from(invoice_refunds)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(invoice_notes)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(entries_table)).scalar_one()),
        )


def test_full_refund_reverses_exactly_what_was_charged(store: InvoiceStore, engine: Engine) -> None:
    invoice_id, ref = paid_invoice(
        store, [DraftLine("a", "Plan", 9_999), DraftLine("b", "Seats", 3_337)]
    )
    invoice = store.get(invoice_id)
    reserved = store.request_refund(
        invoice_id, key=fresh("rk"), amount=None, reason="duplicate", actor="ops@x", at=LATER
    )
    assert (reserved.status, reserved.amount) == ("requested", invoice.total)
    done = store.record_refund(
        refund_id=fresh("re"),
        invoice_id=invoice_id,
        amount=invoice.total,
        currency="EUR",
        payment_ref=ref,
        at=LATER,
        key=reserved.key,
    )
    assert done.status == "recorded" and done.id == reserved.id
    note = store.get_note(str(done.credit_note_id))
    assert note.total == invoice.total
    assert note.tax_total == invoice.tax_total and note.subtotal == invoice.subtotal
    assert (note.receivable_amount, note.customer_credit_amount) == (0, invoice.total)
    ledger = Ledger(engine)
    assert ledger.balance(chart.customer_credit(invoice.customer_id, "EUR").code).amount == 0
    assert ledger.trial_balance().balanced
    assert store.refundable(invoice_id).refundable == 0


def test_partial_refunds_split_tax_at_the_frozen_rate(store: InvoiceStore) -> None:
    # Germany 19 %: 10,000 net + 1,900 tax. A 5,950 refund is half: 5,000 + 950.
    invoice_id, ref = paid_invoice(store, [DraftLine("a", "Plan", 10_000)])
    first = store.record_refund(
        refund_id=fresh("re"),
        invoice_id=invoice_id,
        amount=5_950,
        currency="EUR",
        payment_ref=ref,
        at=LATER,
    )
    note = store.get_note(str(first.credit_note_id))
    assert (note.subtotal, note.tax_total, note.total) == (5_000, 950, 5_950)
    assert note.lines[0].components[0].rate_ppm == 190_000
    # An odd amount: net and tax still add up to it, tax within a unit of 19 % of net.
    second = store.record_refund(
        refund_id=fresh("re"),
        invoice_id=invoice_id,
        amount=1_001,
        currency="EUR",
        payment_ref=ref,
        at=LATER,
    )
    odd = store.get_note(str(second.credit_note_id))
    assert odd.total == 1_001
    assert abs(odd.tax_total - odd.subtotal * 19 / 100) <= 1
    # The rest takes exactly what remains of net and tax.
    rest = store.refundable(invoice_id).refundable
    assert rest == 11_900 - 5_950 - 1_001
    last = store.record_refund(
        refund_id=fresh("re"),
        invoice_id=invoice_id,
        amount=rest,
        currency="EUR",
        payment_ref=ref,
        at=LATER,
    )
    final = store.get_note(str(last.credit_note_id))
    assert note.tax_total + odd.tax_total + final.tax_total == 1_900
    assert note.subtotal + odd.subtotal + final.subtotal == 10_000


def test_a_gateway_refund_is_recorded_once(store: InvoiceStore, engine: Engine) -> None:
    invoice_id, ref = paid_invoice(store, [DraftLine("a", "Plan", 1_000)])
    refund_id = fresh("re")
    first = store.record_refund(
        refund_id=refund_id, invoice_id=invoice_id, amount=500, currency="EUR",
        payment_ref=ref, at=LATER,
    )  # fmt: skip
    before = counts(engine)
    again = store.record_refund(
        refund_id=refund_id, invoice_id=invoice_id, amount=500, currency="EUR",
        payment_ref=ref, at=LATER + timedelta(hours=1),
    )  # fmt: skip
    assert again == first and counts(engine) == before
    assert first.source == "gateway" and first.key == f"gateway:{refund_id}"


def test_inclusive_and_multi_component_lines_refund_to_the_unit(store: InvoiceStore) -> None:
    invoice_id, ref = paid_invoice(
        store,
        [DraftLine("a", "Plan", 9_999), DraftLine("b", "Seats", 3_337, TaxBehavior.INCLUSIVE)],
        address=Address("CA", "QC"),
    )
    total = store.get(invoice_id).total
    for amount in (1, 777, 4_321):
        view = store.record_refund(
            refund_id=fresh("re"), invoice_id=invoice_id, amount=amount, currency="EUR",
            payment_ref=ref, at=LATER,
        )  # fmt: skip
        assert store.get_note(str(view.credit_note_id)).total == amount
    assert store.refundable(invoice_id).refundable == total - 1 - 777 - 4_321


def test_refund_lines_share_among_lines_to_the_unit() -> None:
    vat = TaxComponent("DE", TaxType.VAT, 190_000, 1_000, 190, TaxReason.STANDARD_RATED, "")
    states = [
        LineState("a", 1_000, (vat,), 1_000, (1_000,), (190,)),
        LineState("b", 2_000, (), 2_000, (), ()),
    ]
    lines = refund_lines(states, 1_597)
    assert sum(line.net + line.tax for line in lines) == 1_597
    with pytest.raises(ValueError):
        refund_lines(states, 3_191)


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("unknown_invoice", InvoiceNotFound),
        ("unpaid_invoice", InvoiceStateError),
        ("above_refundable", RefundExceedsRefundable),
        ("bad_reason", InvalidInvoiceInput),
        ("zero_amount", InvalidInvoiceInput),
        ("key_reused", InvoiceIdempotencyConflict),
    ],
)
def test_refusals_write_nothing(
    store: InvoiceStore, engine: Engine, case: str, error: type[Exception]
) -> None:
    invoice_id, _ref = paid_invoice(store, [DraftLine("a", "Plan", 1_000)])
    key = fresh("rk")
    amount: int | None = 500
    reason = "requested_by_customer"
    if case == "unknown_invoice":
        invoice_id = "inv_NoSuchInvoiceAnywhere"
    elif case == "unpaid_invoice":
        invoice_id = issue(store, [DraftLine("a", "Plan", 1_000)]).id
    elif case == "above_refundable":
        amount = 1_191
    elif case == "bad_reason":
        reason = "because"
    elif case == "zero_amount":
        amount = 0
    else:
        store.request_refund(invoice_id, key=key, amount=100, reason=reason, actor="ops", at=LATER)
    before = counts(engine)
    with pytest.raises(error):
        store.request_refund(
            invoice_id, key=key, amount=amount, reason=reason, actor="ops", at=LATER
        )
    assert counts(engine) == before


def test_reservations_cannot_together_exceed_the_payment(store: InvoiceStore) -> None:
    invoice_id, _ref = paid_invoice(store, [DraftLine("a", "Plan", 1_000)])
    store.request_refund(
        invoice_id, key=fresh("rk"), amount=1_000, reason="duplicate", actor="ops", at=LATER
    )
    with pytest.raises(RefundExceedsRefundable):
        store.request_refund(
            invoice_id, key=fresh("rk"), amount=191, reason="duplicate", actor="ops", at=LATER
        )
    failed_key = fresh("rk")
    store.request_refund(
        invoice_id, key=failed_key, amount=190, reason="duplicate", actor="ops", at=LATER
    )
    assert store.fail_refund(failed_key, failure="card_closed", at=LATER).status == "failed"
    assert store.refundable(invoice_id).refundable == 190


def test_refund_and_dispute_tables_are_as_described(pg_engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import MetaData

    import ledger.disputes.tables  # noqa: F401  (declares its tables on the metadata)
    from ledger.schema import Base

    names = {"invoice_refunds", "disputes", "dispute_movements"}
    described = MetaData()
    for table in Base.metadata.sorted_tables:
        if table.name in names | {"invoices"}:  # the tables they refer to
            table.to_metadata(described)
    with pg_engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), described
        )
    assert {t.name for t in described.sorted_tables} >= names
    assert [d for d in diff if any(name in repr(d) for name in names)] == []
