"""``dunwell recon list|show|resolve`` on a SQLite book: runs and exceptions printed,
exceptions worked with who did it, bad input refused with nothing changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from billing.reconciliation.model import ExceptionClass, Finding, Payout
from dunwell.recon_cli import recon_app
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.migrate import upgrade
from ledger.reconciliation import runs
from ledger.reconciliation.exceptions import ExceptionStore
from ledger.unit_of_work import transact

runner = CliRunner()
AT = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ExceptionStore:
    url = f"sqlite:///{tmp_path / 'recon.db'}"
    upgrade(url)
    monkeypatch.setenv("DUNWELL_DATABASE_URL", url)
    get_settings.cache_clear()
    engine = make_engine(url)
    payout = Payout("po_cli", 950, "EUR", "paid", AT, "txn_po")
    transact(engine, lambda c: runs.start_run(c, payout, at=AT))
    store = ExceptionStore(engine)
    store.open(
        [
            Finding(
                ExceptionClass.FEE,
                "fee:po_cli:txn_9",
                "EUR",
                1000,
                "txn_9",
                {"expected_fee": 40},
                "po_cli",
            )
        ],
        actor="recon-payout-po_cli",
        at=AT,
    )
    transact(engine, lambda c: runs.finish_run(c, payout, at=AT, waiting=False))
    yield store
    get_settings.cache_clear()


def test_list_show_and_resolve(book: ExceptionStore) -> None:
    listed = runner.invoke(recon_app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "po_cli" in listed.output and "exceptions 1" in listed.output and "fee" in listed.output
    (xid,) = [x["id"] for x in json.loads(runner.invoke(recon_app, ["list", "--json"]).output)]

    shown = runner.invoke(recon_app, ["show", str(xid)])
    assert json.loads(shown.output)["evidence"] == {"expected_fee": 40}
    report = runner.invoke(recon_app, ["show", "po_cli", "--format", "csv"])
    assert report.output.splitlines()[1].startswith("po_cli,EUR,950,paid")

    acked = runner.invoke(
        recon_app, ["resolve", str(xid), "--actor", "ana@ops", "--action", "acknowledge"]
    )
    assert acked.exit_code == 0 and json.loads(acked.output)["status"] == "acknowledged"
    ignored = runner.invoke(
        recon_app,
        ["resolve", str(xid), "--actor", "ana@ops", "--action", "ignore", "--note", "known"],
    )
    assert json.loads(ignored.output)["status"] == "ignored"
    assert "(no exceptions)" in runner.invoke(recon_app, ["list"]).output


@pytest.mark.parametrize(
    "args",
    [
        ["resolve", "{xid}", "--actor", "ana@ops"],  # resolve needs the adjusting entry
        ["resolve", "{xid}", "--actor", "ana@ops", "--action", "close"],
        ["resolve", "{xid}", "--actor", "ana@ops", "--entry", "999999"],
        ["resolve", "999999", "--actor", "ana@ops", "--action", "ignore"],
        ["show", "not-a-number"],
        ["show", "po_missing"],
        ["list", "--status", "closed"],
        ["backfill", "--from", "2030-01-03", "--to", "2030-01-01"],
    ],
)
def test_bad_input_is_refused_and_changes_nothing(book: ExceptionStore, args: list[str]) -> None:
    (listed,) = book.list()
    before = book.get(listed.id)
    result = runner.invoke(recon_app, [a.replace("{xid}", str(before.id)) for a in args])
    assert result.exit_code != 0
    assert book.get(before.id) == before
