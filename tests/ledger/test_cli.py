"""``dunwell ledger trial-balance`` reports per currency and fails on a broken book."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from dunwell.ledger_cli import ledger_app
from ledger.db import make_engine
from ledger.migrate import upgrade
from ledger.posting import Ledger
from tests.ledger.conftest import open_accounts, transfer

runner = CliRunner()


def _book(tmp_path) -> tuple[str, str]:
    path = tmp_path / "book.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    ledger = Ledger(engine)
    a, b = open_accounts(ledger, 2, "JPY")
    c, d = open_accounts(ledger, 2, "KWD")
    ledger.post_batch([transfer(a, b, 1500, currency="JPY"), transfer(c, d, 12345, currency="KWD")])
    engine.dispose()
    return url, str(path)


def test_trial_balance_json_and_text(tmp_path) -> None:
    url, _ = _book(tmp_path)
    result = runner.invoke(ledger_app, ["trial-balance", "--database-url", url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["balanced"] is True
    totals = {c["currency"]: c for c in report["currencies"]}
    assert totals["JPY"] == {"currency": "JPY", "debits": 1500, "credits": 1500, "net": 0}
    assert totals["KWD"]["debits"] == 12345

    text = runner.invoke(ledger_app, ["trial-balance", "--database-url", url])
    assert text.exit_code == 0
    assert "1500 JPY" in text.output and "12.345 KWD" in text.output


def test_trial_balance_defaults_to_the_settings_url(tmp_path, monkeypatch) -> None:
    url, _ = _book(tmp_path)
    monkeypatch.setenv("DUNWELL_DATABASE_URL", url)
    from dunwell.settings import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(ledger_app, ["trial-balance", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0
    assert {c["currency"] for c in json.loads(result.output)["currencies"]} == {"JPY", "KWD"}


def test_trial_balance_exits_1_when_a_currency_is_off(tmp_path) -> None:
    url, path = _book(tmp_path)
    # Simulate a book damaged outside Dunwell: drop the guards, then add half an entry.
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA foreign_keys=OFF")
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f"DROP TRIGGER {name}")
    account_id = raw.execute("SELECT id FROM ledger_accounts WHERE currency = 'KWD'").fetchone()[0]
    entry_id = raw.execute("SELECT max(id) FROM ledger_entries").fetchone()[0]
    raw.execute(
        "INSERT INTO ledger_postings (entry_id, account_id, currency, amount) VALUES (?, ?, 'KWD', 7)",
        (entry_id, account_id),
    )
    raw.commit()
    raw.close()
    result = runner.invoke(ledger_app, ["trial-balance", "--database-url", url, "--json"])
    assert result.exit_code == 1
    totals = {c["currency"]: c for c in json.loads(result.output)["currencies"]}
    assert totals["KWD"]["net"] == 7 and totals["JPY"]["net"] == 0
    assert runner.invoke(ledger_app, ["trial-balance", "--database-url", url]).exit_code == 1
