"""Proration audit records: stored append-only with inputs, outputs and rounding rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from billing.catalog import Price
from billing.periods import Interval
from billing.proration import prorate
from ledger.invoices import DraftLine, InvoiceIdempotencyConflict, InvoiceStore
from tax import Address
from tests.invoices.conftest import fresh, quote_for

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
CHANGE = datetime(2026, 3, 11, 6, 0, 1, tzinfo=UTC)


def test_proration_audit_with_its_taxed_lines(store: InvoiceStore, engine: Engine) -> None:
    result = prorate(
        old_price=Price("basic", "EUR", 1_000, Interval.MONTH),
        new_price=Price("pro", "EUR", 3_000, Interval.MONTH),
        period_start=START,
        period_end=END,
        change_at=CHANGE,
    )
    draft = store.create_draft(
        key=fresh("inv"),
        customer_id=fresh("cus"),
        subscription_id="sub",
        currency="EUR",
        lines=[
            DraftLine(
                f"l{i}",
                line.description,
                line.amount,
                kind=f"proration_{line.kind.value}",
                plan_id=line.plan_id,
            )
            for i, line in enumerate(result.lines)
        ],
    )
    quote = quote_for(draft, Address("DE"), CHANGE)
    record = result.audit.to_record()
    key = fresh("proration")
    stored = store.record_proration(record, key=key, invoice_id=draft.id, taxed_lines=quote.lines)
    assert stored.record == record
    assert stored.rounding_rule == record["rounding_rule"]
    assert stored.taxed_lines is not None
    assert [line["tax_amount"] for line in stored.taxed_lines] == [
        q.tax_amount for q in quote.lines
    ]
    again = store.record_proration(record, key=key, invoice_id=draft.id, taxed_lines=quote.lines)
    assert again == stored
    assert store.prorations(invoice_id=draft.id) == [stored]
    with pytest.raises(InvoiceIdempotencyConflict):
        store.record_proration({**record, "net_amount": 0}, key=key, invoice_id=draft.id)
