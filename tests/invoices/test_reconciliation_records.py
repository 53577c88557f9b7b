"""The ledger's payments as the matcher reads them: by the payment intent id they cite."""

from __future__ import annotations

from sqlalchemy import Engine

from billing.reconciliation.model import LedgerKind
from ledger.invoices import DraftLine, InvoiceStore
from ledger.reconciliation.records import ledger_records
from ledger.unit_of_work import read
from tests.invoices.conftest import T0, fresh, issue


def test_payments_are_found_by_their_gateway_reference(store: InvoiceStore, engine: Engine) -> None:
    invoice = issue(store, [DraftLine("a", "Plan", 1_000)])
    first, second, absent = fresh("pi"), fresh("pi"), fresh("pi")
    store.mark_paid(invoice.id, payment_ref=first, amount=300, at=T0)
    store.mark_paid(invoice.id, payment_ref=second, amount=200, at=T0)
    found = read(engine, lambda conn: ledger_records(conn, [first, second, absent]))
    assert set(found) == {first, second}
    (record,) = found[first]
    assert (record.kind, record.ref, record.amount, record.currency, record.recorded_at) == (
        LedgerKind.PAYMENT,
        first,
        300,
        invoice.currency,
        T0,
    )
    assert record.entry_id > 0
    assert read(engine, lambda conn: ledger_records(conn, [])) == {}
