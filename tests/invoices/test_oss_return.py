"""The EU OSS quarterly return: per member state of consumption and rate, from the
compliance records; reverse-charged B2B sales, the domestic member state and non-EU
sales left out; a credit note on the previous quarter listed as its correction; the
totals equal the ledger's tax payable movements. CSV and JSON, API and CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from api.errors import install_error_handlers
from api.routes.tax_returns import router
from dunwell.settings import Settings
from dunwell.tax_cli import tax_app
from ledger.invoices import DraftLine, InvoiceStore, NoteLine
from ledger.oss_return import OssReturnError, Quarter, oss_member_states, oss_return
from ledger.tax_report import ledger_tax_movements
from tax import Address
from tests.invoices.conftest import fresh, issue

# 2034 Q3: no other test issues documents then (the return sums the whole quarter).
QUARTER = Quarter(2034, 3)
API_KEY = "test-api-key-for-oss-returns-0123456789"


def at(month: int, day: int) -> datetime:
    return datetime(2034, month, day, 12, tzinfo=UTC)


def _documents(store: InvoiceStore) -> None:
    plan = [DraftLine("plan", "Plan", 10_000)]
    for country in ("DE", "FR", "IT", "ES", "NL"):
        issue(store, plan, address=Address(country), at=at(7, 10))
    issue(store, plan, address=Address("DE"), at=at(9, 30))  # a second German sale
    issue(store, plan, address=Address("AT"), vat_id="ATU13585627", at=at(8, 1))  # B2B
    issue(store, plan, address=Address("IE"), at=at(8, 2))  # domestic: not OSS
    issue(store, plan, address=Address("US", "NY"), currency="USD", at=at(8, 3))
    earlier = issue(store, plan, address=Address("FR"), at=at(5, 20))  # 2034 Q2
    store.credit_note(
        earlier.id, key=fresh("cn"), lines=[NoteLine("plan", 4_000)], reason="r", at=at(8, 15)
    )
    issue(store, plan, address=Address("DE"), at=at(10, 1))  # 2034 Q4


def test_the_oss_return_of_a_quarter(engine: Engine) -> None:
    store = InvoiceStore(engine)
    _documents(store)
    report = oss_return(engine, QUARTER, seller_country="IE")
    assert [(r.member_state, r.rate_ppm, r.currency, r.taxable_amount, r.vat_amount,
             r.documents) for r in report.rows] == [
        ("DE", 190_000, "EUR", 20_000, 3_800, 2),
        ("ES", 210_000, "EUR", 10_000, 2_100, 1),
        ("FR", 200_000, "EUR", 10_000, 2_000, 1),
        ("IT", 220_000, "EUR", 10_000, 2_200, 1),
        ("NL", 210_000, "EUR", 10_000, 2_100, 1),
    ]  # fmt: skip
    (correction,) = report.corrections
    assert (correction.corrects_quarter, correction.member_state, correction.rate_ppm,
            correction.taxable_amount, correction.vat_amount) == (
        "2034Q2", "FR", 200_000, -4_000, -800,
    )  # fmt: skip
    # The totals are the ledger's: tax payable movements of the OSS member states.
    with engine.connect() as conn:
        moved = ledger_tax_movements(conn, start=QUARTER.start, end=QUARTER.end)
    oss = set(oss_member_states("IE"))
    assert report.vat_by_member_state() == {
        key: tax for key, tax in moved.items() if key[0] in oss and tax
    }
    assert moved[("IE", "EUR")] == 2_300, "the domestic sale is in the ledger, not the return"

    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [(r["section"], r["member_state"], r["vat_amount"], r["corrects_quarter"])
            for r in rows][-2:] == [("supply", "NL", "2100", ""),
                                    ("correction", "FR", "-800", "2034Q2")]  # fmt: skip
    document = report.as_dict()
    assert document["quarter"] == "2034Q3" and len(document["rows"]) == 5
    assert document["corrections"][0]["corrects_quarter"] == "2034Q2"


def test_a_seller_outside_the_eu_reports_every_member_state(engine: Engine) -> None:
    report = oss_return(engine, QUARTER, seller_country=None)
    assert oss_member_states(None) == sorted([*oss_member_states("IE"), "IE"])
    assert all(r.member_state != "AT" for r in report.rows), "reverse charge is never OSS"


@pytest.mark.parametrize("text", ["2034Q5", "2034-13", "Q3", "34Q1", ""])
def test_malformed_quarters_are_refused(text: str) -> None:
    with pytest.raises(OssReturnError):
        Quarter.parse(text)


def test_quarters() -> None:
    assert Quarter.parse("2026q3") == Quarter.parse("2026-Q3") == Quarter(2026, 3)
    assert (Quarter(2026, 4).start, Quarter(2026, 4).end) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert Quarter.of(datetime(2026, 9, 30, 23, 59, tzinfo=UTC)) == Quarter(2026, 3)


def _client(engine: Engine) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.engine = engine
    app.state.settings = Settings(env="test", ops_api_key=API_KEY, seller_country="IE")
    return TestClient(app)


def test_the_ops_route_and_the_cli(engine: Engine) -> None:
    client = _client(engine)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    assert client.get("/v1/ops/tax/oss", params={"quarter": "2034Q3"}).status_code == 401
    expected = oss_return(engine, QUARTER, seller_country="IE")
    body = client.get("/v1/ops/tax/oss", params={"quarter": "2034Q3"}, headers=auth)
    assert body.status_code == 200, body.text
    assert body.json() == json.loads(json.dumps(expected.as_dict()))
    as_csv = client.get(
        "/v1/ops/tax/oss", params={"quarter": "2034Q3", "format": "csv"}, headers=auth
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text == expected.to_csv()
    # The schema says what a quarter looks like (a pattern); a quarter that does not exist
    # is refused by the route with its own code.
    bad = client.get("/v1/ops/tax/oss", params={"quarter": "2034Q9"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert bad.json()["error"]["details"][0]["loc"] == ["query", "quarter"]

    url = engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    base = ["oss", "--quarter", "2034Q3", "--seller-country", "IE", "--database-url", url]
    printed = runner.invoke(tax_app, [*base, "--format", "json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == json.loads(json.dumps(expected.as_dict()))
    assert runner.invoke(tax_app, [*base, "--format", "csv"]).output == expected.to_csv()
    text = runner.invoke(tax_app, base).output
    assert "2034Q3" in text and "correction" in text
    refused = runner.invoke(tax_app, ["oss", "--quarter", "2034Q0", "--database-url", url])
    assert refused.exit_code == 2
