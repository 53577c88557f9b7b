"""Tax liability report: equals the ledger's tax payable movements; JSON, CSV, API, CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from api.errors import install_error_handlers
from api.routes.tax_reports import router
from dunwell.settings import Settings
from dunwell.tax_cli import tax_app
from ledger.invoices import DraftLine, InvoiceStore, NoteLine
from ledger.tax_report import (
    TaxReportError,
    ledger_tax_movements,
    parse_bound,
    tax_liability,
)
from tax import Address, TaxBehavior
from tests.invoices.conftest import fresh, issue

START = datetime(2031, 5, 1, tzinfo=UTC)
END = datetime(2031, 6, 1, tzinfo=UTC)
API_KEY = "test-api-key-for-tax-reports"


def _documents(store: InvoiceStore) -> None:
    """A month of documents in 2031 (no other test writes there), and some outside it."""
    day = START + timedelta(days=3)
    lines = [DraftLine("a", "Plan", 10_000), DraftLine("b", "Seats", 2_345, TaxBehavior.INCLUSIVE)]
    de = issue(store, lines, at=day)
    issue(store, lines, at=day + timedelta(hours=1))
    fr = issue(store, lines, address=Address("FR"), vat_id="FR40303265045", at=day)
    qc = issue(store, lines, address=Address("CA", "QC"), currency="CAD", at=day)
    tx = issue(store, lines, address=Address("US", "TX"), currency="USD", at=day)
    issue(store, lines, address=Address("JP"), currency="JPY", at=day)
    store.credit_note(de.id, key=fresh("cn"), lines=[NoteLine("a", 2_500)], reason="r", at=day)
    store.debit_note(qc.id, key=fresh("dn"), lines=[NoteLine("b", 700)], reason="r", at=day)
    store.mark_paid(tx.id, payment_ref="pi", amount=100, at=day)
    store.void(fr.id, key=fresh("void"), reason="r", at=day + timedelta(days=1))
    store.void(qc.id, key=fresh("void"), reason="r", at=day + timedelta(days=2))
    issue(store, lines, at=START - timedelta(seconds=1))  # before the period
    issue(store, lines, at=END)  # the end is exclusive


def test_report_equals_ledger_tax_payable_movements(engine: Engine) -> None:
    store = InvoiceStore(engine)
    _documents(store)
    report = tax_liability(engine, start=START, end=END)
    with engine.connect() as conn:
        movements = ledger_tax_movements(conn, start=START, end=END)
    reported = {k: v for k, v in report.tax_by_jurisdiction().items() if v}
    assert reported == {k: v for k, v in movements.items() if v}
    assert ("DE", "EUR") in reported and ("CA-QC", "CAD") not in reported  # voided
    de = [r for r in report.rows if r.jurisdiction == "DE" and r.reason == "standard_rated"]
    assert len(de) == 1 and de[0].rate_ppm == 190_000 and de[0].documents == 3
    # Two invoices (10,000 + 1,971 net each) less a 2,500 credit.
    assert de[0].taxable_amount == 2 * (10_000 + 1_971) - 2_500
    fr = [r for r in report.rows if r.jurisdiction == "FR"]
    assert fr and all(r.tax_amount == 0 and r.reason == "reverse_charge" for r in fr)
    assert sum(r.taxable_amount for r in fr) == 0  # invoiced then voided


def test_period_bounds() -> None:
    assert parse_bound("2031-05-01", "from") == START
    assert parse_bound("2031-05-01T02:00:00+02:00", "from") == START
    for bad in ("2031-05-01T00:00:00", "yesterday", "2031-13-01"):
        with pytest.raises(TaxReportError):
            parse_bound(bad, "from")


def _client(engine: Engine) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.settings = Settings(env="test", ops_api_key=API_KEY)
    app.state.engine = engine
    return TestClient(app)


def test_api_json_and_csv(engine: Engine) -> None:
    store = InvoiceStore(engine)
    day = datetime(2032, 2, 10, tzinfo=UTC)
    issue(store, [DraftLine("a", "Plan", 10_000)], at=day)
    issue(
        store, [DraftLine("a", "Plan", 5_000)], address=Address("US", "NY"), currency="USD", at=day
    )
    report = tax_liability(
        engine, start=datetime(2032, 2, 1, tzinfo=UTC), end=datetime(2032, 3, 1, tzinfo=UTC)
    )
    client = _client(engine)
    params = {"from": "2032-02-01", "to": "2032-03-01"}
    assert client.get("/v1/ops/tax/liability", params=params).status_code == 401
    auth = {"Authorization": f"Bearer {API_KEY}"}
    body = client.get("/v1/ops/tax/liability", params=params, headers=auth).json()
    assert body["from"] == "2032-02-01T00:00:00+00:00"
    assert body["rows"] == report.as_dict()["rows"]
    assert {(r["jurisdiction"], r["tax_amount"]) for r in body["rows"]} == {
        ("DE", 1_900),
        ("US-NY", 200),
    }
    response = client.get("/v1/ops/tax/liability", params={**params, "format": "csv"}, headers=auth)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["jurisdiction"], int(r["tax_amount"]), int(r["documents"])) for r in rows] == [
        ("DE", 1_900, 1),
        ("US-NY", 200, 1),
    ]
    bad = client.get(
        "/v1/ops/tax/liability", params={"from": "2032-03-01", "to": "2032-02-01"}, headers=auth
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_period"
    assert (
        client.get(
            "/v1/ops/tax/liability", params={**params, "format": "xml"}, headers=auth
        ).status_code
        == 422
    )


def test_cli_report(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = InvoiceStore(engine)
    issue(store, [DraftLine("a", "Plan", 20_000)], at=datetime(2033, 4, 2, tzinfo=UTC))
    url = engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    base = ["report", "--from", "2033-04-01", "--to", "2033-05-01", "--database-url", url]
    out = tmp_path / "liability.csv"
    result = runner.invoke(tax_app, [*base, "--format", "csv", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == [
        "jurisdiction,tax_type,currency,rate_ppm,reason,taxable_amount,tax_amount,documents",
        "DE,vat,EUR,190000,standard_rated,20000,3800,1",
    ]
    as_json = runner.invoke(tax_app, [*base, "--format", "json"])
    assert json.loads(as_json.output)["rows"][0]["tax_amount"] == 3_800
    text = runner.invoke(tax_app, base)
    assert "DE" in text.output and "38.00" in text.output
    naive = runner.invoke(
        tax_app,
        ["report", "--from", "2033-04-01T00:00:00", "--to", "2033-05-01", "--database-url", url],
    )
    assert naive.exit_code == 2
