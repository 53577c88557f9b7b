"""Invoice events are written in the transaction of the change they report: once per
change however often the call is retried, for every endpoint that wants the type and is
not disabled, and never for a change that was refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from ledger.invoices import DraftLine, InvoiceStore, NoteLine
from ledger.invoices.errors import InvoiceError
from ledger.outbound import endpoints, reads
from tests.invoices.conftest import GERMANY, T0, details_for, fresh, issue, quote_for

LINES = [DraftLine("a", "Pro plan", 10_000)]


def events_of(engine: Engine, subscription_id: str | None) -> list[reads.StoredEvent]:
    return reads.list_events(engine, subscription_id=subscription_id, limit=1000)


def endpoint(engine: Engine, types: list[str]) -> str:
    made, _secret = endpoints.register(
        engine, url="http://127.0.0.1:9/hook", event_types=types, description="", at=T0
    )
    return made.id


def test_finalizing_writes_invoice_finalized_once_with_its_deliveries(
    store: InvoiceStore, engine: Engine
) -> None:
    wants = endpoint(engine, ["invoice.finalized", "invoice.paid"])
    other = endpoint(engine, ["credit_note.issued"])
    disabled = endpoint(engine, ["invoice.finalized"])
    endpoints.set_status(engine, disabled, "disabled", reason="paused", at=T0)

    invoice = issue(store, LINES)
    quote = quote_for(invoice, GERMANY, T0)
    again = store.finalize(invoice.id, quote=quote, customer_tax=details_for(GERMANY), at=T0)
    assert again.number == invoice.number

    (event,) = events_of(engine, invoice.subscription_id)
    assert event.type == "invoice.finalized" and event.id.startswith("evt_")
    assert event.data["object"]["id"] == invoice.id
    assert event.data["object"]["total"] == invoice.total
    assert (event.customer_id, event.occurred_at) == (invoice.customer_id, T0)
    delivered_to = {d.endpoint_id for d in reads.deliveries_of(engine, event.id)}
    assert wants in delivered_to
    assert other not in delivered_to and disabled not in delivered_to
    assert all(d.status == "pending" for d in reads.deliveries_of(engine, event.id))


def test_paying_in_full_writes_invoice_paid_once(store: InvoiceStore, engine: Engine) -> None:
    invoice = issue(store, LINES)
    later = T0 + timedelta(hours=1)
    store.mark_paid(invoice.id, payment_ref="pi_1", amount=invoice.total - 100, at=later)
    assert [e.type for e in events_of(engine, invoice.subscription_id)] == ["invoice.finalized"]
    for _ in range(2):  # the retry finds the payment recorded
        store.mark_paid(invoice.id, payment_ref="pi_2", amount=100, at=later)
    types = [e.type for e in events_of(engine, invoice.subscription_id)]
    assert types == ["invoice.finalized", "invoice.paid"]
    paid = events_of(engine, invoice.subscription_id)[-1]
    assert paid.data["object"]["payment_ref"] == "pi_2" and paid.occurred_at == later


def test_a_credit_note_writes_credit_note_issued_once(store: InvoiceStore, engine: Engine) -> None:
    invoice = issue(store, LINES)
    key = fresh("cn")
    notes = [
        store.credit_note(invoice.id, key=key, lines=[NoteLine("a", 1_000)], reason="x", at=T0)
        for _ in range(2)
    ]
    assert notes[0].id == notes[1].id
    issued = [
        e for e in events_of(engine, invoice.subscription_id) if e.type != "invoice.finalized"
    ]
    assert [(e.type, e.data["object"]["id"]) for e in issued] == [
        ("credit_note.issued", notes[0].id)
    ]


def test_a_refused_change_writes_no_event(store: InvoiceStore, engine: Engine) -> None:
    draft = store.create_draft(
        key=fresh("inv"),
        customer_id=fresh("cus"),
        subscription_id=fresh("sub"),
        currency="EUR",
        lines=LINES,
    )
    wrong = quote_for(
        store.create_draft(
            key=fresh("inv"),
            customer_id=fresh("cus"),
            subscription_id=fresh("sub"),
            currency="EUR",
            lines=[DraftLine("b", "Other", 5)],
        ),
        GERMANY,
        T0,
    )
    with pytest.raises(InvoiceError):
        store.finalize(draft.id, quote=wrong, customer_tax=details_for(GERMANY), at=T0)
    assert events_of(engine, draft.subscription_id) == []
