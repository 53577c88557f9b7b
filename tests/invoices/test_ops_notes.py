"""Credit and debit notes ops issue by hand (API and ``dunwell invoice``): the store's
limits, tax at the invoice's frozen rates, ledger postings, the actor; every refusal
changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from api.errors import install_error_handlers
from api.routes.ops_notes import router
from dunwell.invoice_cli import invoice_app
from dunwell.settings import Settings
from ledger.compliance import ComplianceLedger
from ledger.invoices import DraftLine, InvoiceStore, InvoiceView
from ledger.models import JournalEntry
from ledger.ops_notes import note_actor
from ledger.posting import Ledger
from stores import audit
from tests.invoices.conftest import fresh, issue

API_KEY = "test-api-key-for-ops-notes-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LINES = [DraftLine("plan", "Plan", 10_000), DraftLine("seats", "Seats", 5_000)]


def _client(engine: Engine) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.engine = engine
    app.state.settings = Settings(env="test", ops_api_key=API_KEY)
    return TestClient(app)


def snapshot(engine: Engine, invoice: InvoiceView) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    store = InvoiceStore(engine)
    with engine.connect() as conn:
        entries = conn.execute(select(func.count()).select_from(JournalEntry)).scalar_one()
    return (
        store.get(invoice.id),
        store.notes_for_invoice(invoice.id),
        entries,
        len(ComplianceLedger(engine).tax_line_records(invoice_id=invoice.id)),
        _audited(engine, invoice.id),
    )


def _audited(engine: Engine, invoice_id: str) -> list[audit.AuditRow]:
    with engine.connect() as conn:
        return audit.list_entries(conn, target=f"invoice:{invoice_id}")


def test_ops_credit_and_debit_notes_through_the_api(engine: Engine) -> None:
    store = InvoiceStore(engine)
    invoice = issue(store, LINES)  # Germany, 19 %
    client = _client(engine)
    body = {
        "lines": [{"line_id": "plan", "amount": 2_500}],
        "reason": "goodwill",
        "actor": "ops@example.test",
        "idempotency_key": fresh("k"),
    }
    url = f"/v1/ops/invoices/{invoice.id}"
    assert client.post(f"{url}/credit-notes", json=body).status_code == 401
    credit = client.post(f"{url}/credit-notes", json=body, headers=AUTH)
    assert credit.status_code == 201, credit.text
    note = credit.json()
    assert (note["kind"], note["subtotal"], note["tax_total"], note["total"]) == (
        "credit",
        2_500,
        475,
        2_975,
    )
    assert note["actor"] == "ops@example.test" and note["reason"] == "goodwill"
    assert note["lines"][0]["tax"][0]["rate_ppm"] == 190_000
    assert note_actor(store, note["id"]) == "ops@example.test"
    # The ledger: receivable down by the total, tax payable and revenue reversed.
    ledger = Ledger(engine)
    receivable = ledger.balance(f"receivable:{invoice.customer_id}:EUR").amount
    assert receivable == invoice.total - 2_975
    records = ComplianceLedger(engine).tax_line_records(document_id=note["id"])
    assert [(r.document_kind, r.tax_amount, r.rate_ppm) for r in records] == [
        ("credit_note", -475, 190_000)
    ]
    # A retry under the same key returns the same note; another actor changes nothing.
    again = client.post(f"{url}/credit-notes", json={**body, "actor": "x"}, headers=AUTH)
    assert again.status_code == 201 and again.json()["id"] == note["id"]
    assert again.json()["actor"] == "ops@example.test"

    debit_body = {**body, "lines": [{"line_id": "seats", "amount": 1_000}], "actor": "fin"}
    debit = client.post(f"{url}/debit-notes", json=debit_body, headers=AUTH)
    assert debit.status_code == 201, debit.text
    assert (debit.json()["kind"], debit.json()["tax_total"], debit.json()["total"]) == (
        "debit",
        190,
        1_190,
    )
    after = store.get(invoice.id)
    assert after.amount_remaining == invoice.total - 2_975 + 1_190
    # Each accepted request is in the audit log under the ops key's id, with the note.
    rows = _audited(engine, invoice.id)
    assert [(r.actor, r.action, r.after["id"]) for r in rows] == [
        ("ops", "invoice.credit_note", note["id"]),
        ("ops", "invoice.credit_note", note["id"]),
        ("ops", "invoice.debit_note", debit.json()["id"]),
    ]
    assert rows[0].after == note


def test_every_refusal_changes_nothing(engine: Engine) -> None:
    store = InvoiceStore(engine)
    invoice = issue(store, LINES)
    other = issue(store, LINES)
    client = _client(engine)
    used = fresh("k")
    first = client.post(
        f"/v1/ops/invoices/{other.id}/credit-notes",
        json={"lines": [{"line_id": "plan", "amount": 1}], "reason": "r", "actor": "a",
              "idempotency_key": used},
        headers=AUTH,
    )  # fmt: skip
    assert first.status_code == 201
    voided = issue(store, LINES)
    store.void(voided.id, key=fresh("void"), reason="r", at=voided.finalized_at)  # type: ignore[arg-type]

    def body(**overrides: Any) -> dict[str, Any]:
        base = {
            "lines": [{"line_id": "plan", "amount": 1_000}],
            "reason": "r",
            "actor": "ops",
            "idempotency_key": fresh("k"),
        }
        return {**base, **overrides}

    cases = [
        ("credit", invoice.id, body(lines=[{"line_id": "plan", "amount": 10_001}]), 422,
         "credit_exceeds_remaining"),
        ("credit", invoice.id, body(lines=[{"line_id": "nope", "amount": 1}]), 422, "invalid_note"),
        ("debit", invoice.id, body(lines=[{"line_id": "nope", "amount": 1}]), 422, "invalid_note"),
        ("credit", invoice.id, body(lines=[{"line_id": "plan", "amount": 0}]), 422,
         "invalid_request"),
        ("credit", invoice.id, body(lines=[]), 422, "invalid_request"),
        ("credit", invoice.id, body(actor=""), 422, "invalid_request"),
        ("credit", invoice.id, body(reason=""), 422, "invalid_request"),
        ("credit", invoice.id, body(lines=[{"line_id": "plan", "amount": 1},
                                           {"line_id": "plan", "amount": 1}]), 422, "invalid_note"),
        ("credit", "in_nothing", body(), 404, "unknown_invoice"),
        ("credit", voided.id, body(), 409, "invoice_not_adjustable"),
        ("debit", voided.id, body(), 409, "invoice_not_adjustable"),
        ("credit", invoice.id, body(idempotency_key=used), 409, "idempotency_key_reused"),
    ]  # fmt: skip
    for kind, invoice_id, request, status, code in cases:
        before = snapshot(engine, invoice)
        response = client.post(
            f"/v1/ops/invoices/{invoice_id}/{kind}-notes", json=request, headers=AUTH
        )
        assert response.status_code == status, (request, response.text)
        assert response.json()["error"]["code"] == code, response.text
        assert response.json()["error"]["message"]
        assert snapshot(engine, invoice) == before, (kind, request)


def test_dunwell_invoice_credit_and_debit(engine: Engine) -> None:
    store = InvoiceStore(engine)
    invoice = issue(store, LINES)
    url = engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    common = ["--reason", "billing error", "--actor", "ops@example.test", "--database-url", url]
    credit = runner.invoke(invoice_app, ["credit", invoice.id, "--lines", "plan=1000", *common])
    assert credit.exit_code == 0, credit.output
    issued = json.loads(credit.output)
    assert (issued["kind"], issued["tax_total"], issued["actor"]) == (
        "credit",
        190,
        "ops@example.test",
    )
    assert note_actor(store, issued["id"]) == "ops@example.test"
    debit = runner.invoke(
        invoice_app, ["debit", invoice.id, "--lines", "plan=100,seats=200", *common]
    )
    assert debit.exit_code == 0, debit.output
    assert json.loads(debit.output)["tax_total"] == 19 + 38
    retried = runner.invoke(
        invoice_app,
        ["credit", invoice.id, "--lines", "plan=1000", "--key", issued["key"], *common],
    )
    assert json.loads(retried.output)["id"] == issued["id"]

    before = snapshot(engine, invoice)
    for args in (
        ["credit", invoice.id, "--lines", "plan=999999", *common],
        ["credit", invoice.id, "--lines", "ghost=5", *common],
        ["credit", "in_nothing", "--lines", "plan=5", *common],
        ["debit", invoice.id, "--lines", "plan", *common],
        ["debit", invoice.id, "--lines", "plan=-5", *common],
        ["credit", invoice.id, "--lines", "plan=5", "--reason", "r", "--actor", "",
         "--database-url", url],
    ):  # fmt: skip
        refused = runner.invoke(invoice_app, args)
        assert refused.exit_code == 2, (args, refused.output)
        assert snapshot(engine, invoice) == before, args


@pytest.mark.parametrize("text", ["a=1,b", "=5", "a=1.5"])
def test_malformed_lines_are_refused(text: str) -> None:
    from dunwell.invoice_cli import parse_lines

    with pytest.raises(Exception, match="LINE_ID=AMOUNT"):
        parse_lines(text)
