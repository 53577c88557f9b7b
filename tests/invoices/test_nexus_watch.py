"""Economic-nexus positions from the compliance records, and alerts at 80 % and 100 %
of a threshold where the seller is not registered, each raised exactly once."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from ledger.invoices import DraftLine, InvoiceStore, NoteLine
from ledger.nexus_watch import nexus_alerts, nexus_positions, raise_alerts, watch
from tax import Address, Registration, TaxType
from tax.errors import RateDataError
from tax.nexus import load_thresholds, parse_thresholds
from tests.invoices.conftest import REGISTRATIONS, fresh, issue

HEADER = (
    "jurisdiction,currency,sales_amount,transactions,combine,measurement_period,"
    "valid_from,valid_to,source_url,retrieved_on,note\n"
)
# Small made-up thresholds in 2035 (no other test bills US customers then).
THRESHOLDS = parse_thresholds(
    HEADER
    + "US-CO,USD,1000,,,calendar_year,2035-01-01,,https://example.test/co,2035-01-01,\n"
    + "US-NY,USD,1000,5,and,calendar_year,2035-01-01,,https://example.test/ny,2035-01-01,\n"
    + "US-UT,USD,1000,3,or,rolling_12_months,2035-01-01,,https://example.test/ut,2035-01-01,\n"
)


def at(month: int, day: int) -> datetime:
    return datetime(2035, month, day, 12, tzinfo=UTC)


def bill(store: InvoiceStore, state: str, dollars: int, when: datetime) -> str:
    invoice = issue(
        store, [DraftLine("plan", "Plan", dollars * 100)], address=Address("US", state),
        currency="USD", at=when,
    )  # fmt: skip
    return invoice.id


def test_positions_and_alerts_once_per_threshold(engine: Engine) -> None:
    store = InvoiceStore(engine)
    bill(store, "CO", 500, at(2, 1))
    first = bill(store, "CO", 300, at(3, 1))  # 800 of 1000: 80 %
    bill(store, "NY", 2_000, at(3, 1))  # registered in NY: never an alert
    positions = {
        p.jurisdiction: p
        for p in nexus_positions(engine, THRESHOLDS, REGISTRATIONS, at(3, 2).date())
    }
    co = positions["US-CO"]
    assert (co.sales, co.transactions, co.percent, co.registered) == (80_000, 2, 80, False)
    assert positions["US-NY"].registered and positions["US-NY"].percent == 20  # 1 of 5 sales
    raised = raise_alerts(engine, list(positions.values()), at=at(3, 2))
    assert [(a.jurisdiction, a.level) for a in raised] == [("US-CO", 80)]
    again = nexus_positions(engine, THRESHOLDS, REGISTRATIONS, at(3, 3).date())
    assert raise_alerts(engine, again, at=at(3, 3)) == [], "once per threshold and level"

    # A credit note lowers the running total; new sales cross 100 %.
    store.credit_note(first, key=fresh("cn"), lines=[NoteLine("plan", 10_000)], reason="r",
                      at=at(3, 4))  # fmt: skip
    assert nexus_positions(engine, THRESHOLDS, REGISTRATIONS, at(3, 4).date())[0].sales == 70_000
    bill(store, "CO", 400, at(4, 1))
    later = nexus_positions(engine, THRESHOLDS, REGISTRATIONS, at(4, 2).date())
    assert [(a.jurisdiction, a.level) for a in raise_alerts(engine, later, at=at(4, 2))] == [
        ("US-CO", 100)
    ]
    assert raise_alerts(engine, later, at=at(4, 3)) == []
    mine = [(a.jurisdiction, a.level) for a in nexus_alerts(engine) if a.jurisdiction == "US-CO"]
    assert mine == [("US-CO", 80), ("US-CO", 100)]


def test_transactions_count_where_the_state_still_counts_them(engine: Engine) -> None:
    store = InvoiceStore(engine)
    for month in (5, 6, 7):
        bill(store, "UT", 1, at(month, 1))  # 3 transactions of 3: 100 % by count (or)
    (ut,) = [p for p in nexus_positions(engine, THRESHOLDS, (), at(7, 2).date())
             if p.jurisdiction == "US-UT"]  # fmt: skip
    assert (ut.sales, ut.transactions, ut.percent) == (300, 3, 100)
    # Registered from now on: no alert.
    registered = (Registration("US-UT", TaxType.SALES_TAX, date(2035, 7, 1), None, "UT-1"),)
    positions = nexus_positions(engine, THRESHOLDS, registered, at(7, 2).date())
    assert all(a.jurisdiction != "US-UT" for a in raise_alerts(engine, positions, at=at(7, 2)))


def test_the_watch_reads_the_registrations_recorded(engine: Engine) -> None:
    positions, _ = watch(engine, THRESHOLDS, at=at(12, 1))
    assert {p.jurisdiction for p in positions} == {"US-CO", "US-NY", "US-UT"}


def test_the_packaged_thresholds_are_sourced_and_dated() -> None:
    thresholds = load_thresholds()
    assert {"US-CA", "US-TX", "US-NY", "AU"} <= {t.jurisdiction for t in thresholds}
    assert all(t.source_url.startswith("https://") for t in thresholds)
    ny = next(t for t in thresholds if t.jurisdiction == "US-NY")
    assert (ny.sales_minor, ny.transactions, ny.combine) == (50_000_000, 100, "and")
    assert ny.window(date(2026, 8, 15)) == (
        datetime(2025, 7, 1, tzinfo=UTC),
        datetime(2026, 7, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "row",
    [
        "US-CO,USD,1000,,,monthly,2035-01-01,,https://example.test,2035-01-01,",
        "US-CO,USD,1000,5,,calendar_year,2035-01-01,,https://example.test,2035-01-01,",
        "US-CO,USD,1000,,,calendar_year,2035-01-01,,,2035-01-01,",
    ],
)
def test_malformed_threshold_rows_are_refused(row: str) -> None:
    with pytest.raises(RateDataError):
        parse_thresholds(HEADER + row + "\n")


API_KEY = "test-api-key-for-nexus-0123456789"


def test_the_ops_routes_and_the_cli(engine: Engine) -> None:
    import json

    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from api.errors import install_error_handlers
    from api.routes.tax_nexus import router
    from dunwell.settings import Settings
    from dunwell.tax_cli import tax_app
    from ledger.compliance import ComplianceLedger

    store = InvoiceStore(engine)
    bill(store, "PA", 700, at(8, 1))  # no other test registers in Pennsylvania
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.engine = engine
    app.state.settings = Settings(env="test", ops_api_key=API_KEY)
    client = TestClient(app)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    assert client.get("/v1/ops/tax/nexus-positions").status_code == 401
    body = client.get("/v1/ops/tax/nexus-positions", params={"day": "2035-08-02"}, headers=auth)
    assert body.status_code == 200, body.text
    expected = nexus_positions(
        engine, load_thresholds(), ComplianceLedger(engine).registrations(), date(2035, 8, 2)
    )
    got = {i["jurisdiction"]: i for i in body.json()["items"]}
    assert set(got) == {p.jurisdiction for p in expected}
    pa = got["US-PA"]
    assert (pa["sales"], pa["sales_threshold"], pa["registered"]) == (70_000, 10_000_000, False)
    assert pa["source_url"].startswith("https://")
    bad = client.get("/v1/ops/tax/nexus-positions", params={"day": "soon"}, headers=auth)
    assert bad.status_code == 422
    alerts = client.get("/v1/ops/tax/nexus-alerts", headers=auth).json()["items"]
    assert len(alerts) == len(nexus_alerts(engine))

    url = engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    shown = runner.invoke(
        tax_app, ["nexus", "position", "--day", "2035-08-02", "--json", "--database-url", url]
    )
    assert shown.exit_code == 0, shown.output
    rows = {
        json.loads(line)["jurisdiction"]: json.loads(line) for line in shown.output.splitlines()
    }
    assert rows["US-PA"]["sales"] == "700.00 USD" and rows["US-PA"]["registered"] is False
    listed = runner.invoke(tax_app, ["nexus", "alerts", "--json", "--database-url", url])
    assert listed.exit_code == 0 and len(listed.output.splitlines()) == len(nexus_alerts(engine))
    refused = runner.invoke(tax_app, ["nexus", "position", "--day", "x", "--database-url", url])
    assert refused.exit_code == 2
