"""``dunwell audit`` on a SQLite database: rows printed oldest first, filtered, paged, as
JSON in the ops API's shape; bad times refused (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dunwell.cli import app
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.migrate import upgrade
from stores import audit

runner = CliRunner()
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    monkeypatch.setenv("DUNWELL_DATABASE_URL", url)
    get_settings.cache_clear()
    engine = make_engine(url)
    ids = []
    with engine.begin() as conn:
        for n, (actor, action, target) in enumerate(
            [
                ("ops", "dunning.end", "invoice:in_1"),
                ("server", "portal_session.mint", "customer:cus_1"),
                ("ana", "review.write_off", "invoice:in_1"),
            ]
        ):
            entry = audit.AuditEntry(actor, action, target, after={"n": n}, request_id=f"r{n}")
            ids.append(audit.record(conn, entry, at=T0 + timedelta(hours=n)))
    engine.dispose()
    yield ids
    get_settings.cache_clear()


def test_lists_every_row_oldest_first(logged: list[int]) -> None:
    result = runner.invoke(app, ["audit"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3
    assert "dunning.end" in lines[0] and "invoice:in_1" in lines[0] and "request r0" in lines[0]
    assert "portal_session.mint" in lines[1] and "server" in lines[1]


def test_filters_and_pages_as_json(logged: list[int]) -> None:
    result = runner.invoke(app, ["audit", "--target", "invoice:in_1", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["id"] for r in rows] == [logged[0], logged[2]]
    assert rows[1] == {
        "id": logged[2],
        "at": "2026-12-01T11:00:00Z",
        "actor": "ana",
        "action": "review.write_off",
        "target": "invoice:in_1",
        "outcome": "done",
        "before": None,
        "after": {"n": 2},
        "request_id": "r2",
    }
    by_actor = json.loads(runner.invoke(app, ["audit", "--actor", "server", "--json"]).output)
    assert [r["id"] for r in by_actor] == [logged[1]]
    page = json.loads(
        runner.invoke(app, ["audit", "--after", str(logged[0]), "--limit", "1", "--json"]).output
    )
    assert [r["id"] for r in page] == [logged[1]]
    window = json.loads(
        runner.invoke(
            app,
            [
                "audit",
                "--since",
                "2026-12-01T10:00:00Z",
                "--until",
                "2026-12-01T11:00:00+00:00",
                "--json",
            ],
        ).output
    )
    assert [r["id"] for r in window] == [logged[1]]


def test_nothing_found_says_so(logged: list[int]) -> None:
    result = runner.invoke(app, ["audit", "--action", "nothing.like.this"])
    assert result.exit_code == 0 and "(no audit entries)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "not an ISO 8601 time"),
        (["--until", "2026-12-01T10:00:00"], "give the offset"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_options_are_refused(logged: list[int], args: list[str], message: str) -> None:
    result = runner.invoke(app, ["audit", *args])
    assert result.exit_code == 2
    assert message in result.output
