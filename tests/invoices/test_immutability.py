"""The database itself refuses changes to finalized invoices and append-only records."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ledger.compliance import ComplianceLedger
from ledger.invoices import DraftLine, InvoiceStore, NoteLine
from tax import ExemptionCertificate, Registration, TaxType
from tests.invoices.conftest import T0, fresh, issue


def run(engine: Engine, sql: str, **params: object) -> int:
    with engine.begin() as conn:
        return conn.execute(text(sql), params).rowcount


def refused(engine: Engine, sql: str, **params: object) -> None:
    with pytest.raises(DBAPIError):
        run(engine, sql, **params)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE invoice_lines SET amount = amount + 1 WHERE invoice_id = :id",
        "UPDATE invoice_lines SET tax_amount = 0 WHERE invoice_id = :id",
        "UPDATE invoice_lines SET description = 'changed' WHERE invoice_id = :id",
        "DELETE FROM invoice_lines WHERE invoice_id = :id",
        "INSERT INTO invoice_lines (invoice_id, line_id, position, description, kind, amount,"
        " tax_behavior) VALUES (:id, 'extra', 9, 'x', 'one_off', 5, 'exclusive')",
        "UPDATE invoices SET total = total - 1 WHERE id = :id",
        "UPDATE invoices SET subtotal = 0, tax_total = 0 WHERE id = :id",
        "UPDATE invoices SET number = 'DW-2026-999999' WHERE id = :id",
        "UPDATE invoices SET customer_vat_id = 'DE136695976' WHERE id = :id",
        "UPDATE invoices SET currency = 'USD' WHERE id = :id",
        "UPDATE invoices SET status = 'draft' WHERE id = :id",
        "UPDATE invoices SET status = 'paid', total = 1 WHERE id = :id",
        "DELETE FROM invoices WHERE id = :id",
        "UPDATE tax_line_records SET rate_ppm = 0 WHERE invoice_id = :id",
        "DELETE FROM tax_line_records WHERE invoice_id = :id",
    ],
)
def test_finalized_invoice_is_frozen(store: InvoiceStore, engine: Engine, statement: str) -> None:
    invoice = issue(store, [DraftLine("a", "Plan", 10_000), DraftLine("b", "Seats", 300)])
    refused(engine, statement, id=invoice.id)
    assert store.get(invoice.id) == invoice


def test_status_moves_only_along_allowed_transitions(store: InvoiceStore, engine: Engine) -> None:
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)])
    assert (
        run(engine, "UPDATE invoices SET status = 'uncollectible' WHERE id = :id", id=invoice.id)
        == 1
    )
    refused(engine, "UPDATE invoices SET status = 'open' WHERE id = :id", id=invoice.id)
    refused(engine, "UPDATE invoices SET status = 'void' WHERE id = :id", id=invoice.id)
    assert run(engine, "UPDATE invoices SET status = 'paid' WHERE id = :id", id=invoice.id) == 1
    for status in ("open", "void", "uncollectible", "draft"):
        refused(engine, "UPDATE invoices SET status = :s WHERE id = :id", s=status, id=invoice.id)


def test_draft_lines_may_change(store: InvoiceStore, engine: Engine) -> None:
    draft = store.create_draft(
        key=fresh("inv"),
        customer_id=fresh("cus"),
        subscription_id=None,
        currency="EUR",
        lines=[DraftLine("a", "Plan", 100)],
    )
    assert (
        run(engine, "UPDATE invoice_lines SET amount = 200 WHERE invoice_id = :id", id=draft.id)
        == 1
    )
    assert store.get(draft.id).subtotal == 200


def test_notes_payments_and_counters_are_append_only(store: InvoiceStore, engine: Engine) -> None:
    invoice = issue(store, [DraftLine("a", "Plan", 10_000)])
    note = store.credit_note(
        invoice.id, key=fresh("cn"), lines=[NoteLine("a", 100)], reason="r", at=T0
    )
    store.mark_paid(invoice.id, payment_ref="pi", amount=100, at=T0)
    for statement in (
        "UPDATE invoice_notes SET total = 0 WHERE id = :id",
        "DELETE FROM invoice_notes WHERE id = :id",
        "UPDATE invoice_note_lines SET tax_amount = 0 WHERE note_id = :id",
        "DELETE FROM invoice_note_lines WHERE note_id = :id",
    ):
        refused(engine, statement, id=note.id)
    refused(engine, "UPDATE invoice_payments SET amount = 1 WHERE invoice_id = :id", id=invoice.id)
    refused(engine, "DELETE FROM invoice_payments WHERE invoice_id = :id", id=invoice.id)
    refused(engine, "UPDATE document_counters SET last_number = last_number + 2")
    refused(engine, "UPDATE document_counters SET last_number = last_number - 1")
    refused(engine, "DELETE FROM document_counters")


@pytest.mark.parametrize(
    "table",
    [
        "compliance_rate_tables",
        "compliance_rate_rows",
        "compliance_registrations",
        "compliance_exemption_certificates",
        "compliance_vat_checks",
        "proration_audits",
    ],
)
def test_compliance_records_are_append_only(
    store: InvoiceStore, engine: Engine, table: str
) -> None:
    issue(store, [DraftLine("a", "Plan", 100)], vat_id="DE136695976")
    ComplianceLedger(engine).record_registration(
        Registration("DE", TaxType.VAT, date(2021, 1, 1), None, fresh("reg")), at=T0
    )
    store.record_proration({"rounding_rule": "r", "x": 1}, key=fresh("pr"))
    ComplianceLedger(engine).record_exemption_certificate(
        fresh("cus"), ExemptionCertificate("US-TX", "1", date(2025, 1, 1), None, "doc"), at=T0
    )
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() > 0
    column = "version" if table == "compliance_rate_tables" else "id"
    refused(engine, f"UPDATE {table} SET {column} = {column}")
    refused(engine, f"DELETE FROM {table}")
