"""``dunwell tax certificate|registration|nexus add|list``: recorded with the actor and
listed; a refusal exits 2 and writes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Engine
from typer.testing import CliRunner

from billing.catalog import BillingAddress
from dunwell.tax_cli import tax_app
from stores.customers import CustomerRecord, insert_customer
from tests.invoices.conftest import fresh
from tests.invoices.test_tax_records import counts


def run(engine: Engine, *args: str) -> tuple[int, str]:
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(tax_app, [*args, "--database-url", url])
    return result.exit_code, result.output


def test_certificates(engine: Engine) -> None:
    customer = fresh("cus")
    with engine.begin() as conn:
        insert_customer(
            conn,
            CustomerRecord(
                id=customer,
                email="a@example.test",
                name="A",
                address=BillingAddress("US", "TX", "73301", "Austin", "1 Congress Ave"),
                tax_id=None,
                timezone="America/Chicago",
                gateway_customer_id=None,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            ),
        )
    add = ["certificate", "add", "--customer", customer, "--jurisdiction", "US-TX",
           "--number", "EX-CLI", "--from", "2026-01-01", "--document", "doc://cli",
           "--actor", "ops@example.test"]  # fmt: skip
    code, out = run(engine, *add, "--json")
    assert code == 0, out
    recorded = json.loads(out)
    assert (recorded["jurisdiction"], recorded["actor"]) == ("US-TX", "ops@example.test")
    code, out = run(engine, "certificate", "list", "--customer", customer, "--json")
    assert [json.loads(line) for line in out.splitlines()] == [recorded]
    before = counts(engine)
    for args in (
        [*add, "--to", "2025-12-31"],
        [*add[:5], "ZZ", *add[6:]],
        [*add[:3], "cus_nobody", *add[4:]],
        [*add[:9], "yesterday", *add[10:]],
    ):
        code, out = run(engine, *args)
        assert code == 2, (args, out)
    assert counts(engine) == before


def test_registrations_and_nexus(engine: Engine) -> None:
    number = fresh("reg")
    add = ["registration", "add", "--jurisdiction", "US-NM", "--number", number,
           "--from", "2026-01-01", "--tax-type", "sales_tax", "--actor", "ops"]  # fmt: skip
    code, out = run(engine, *add, "--json")
    assert code == 0, out
    assert json.loads(out)["registration_number"] == number
    code, out = run(engine, "registration", "list", "--jurisdiction", "US-NM", "--json")
    assert number in out
    before = counts(engine)
    overlapping = [*add[:5], fresh("reg"), *add[6:]]
    for args in (overlapping, [*add, "--to", "2025-01-01"], [*add[:3], "US-QQ", *add[4:]]):
        code, out = run(engine, *args)
        assert code == 2 and "refused" in out, (args, out)
    assert counts(engine) == before

    nexus = ["nexus", "add", "--jurisdiction", "US-NM", "--basis", "economic",
             "--from", "2026-02-01", "--actor", "ops"]  # fmt: skip
    code, out = run(engine, *nexus)
    assert code == 0, out
    code, out = run(engine, "nexus", "list", "--jurisdiction", "US-NM")
    assert "basis=economic" in out and "actor=ops" in out
    before = counts(engine)
    code, out = run(engine, *nexus[:5], "remote", *nexus[6:])
    assert code == 2 and counts(engine) == before
