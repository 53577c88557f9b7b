"""The audit log on both databases: rows written and read back in order, filtered and
paged; UPDATE, DELETE (and TRUNCATE on PostgreSQL) refused by the database itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ledger.db import make_engine
from ledger.migrate import upgrade
from stores import audit
from tests.conftest import create_database, drop_database

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        upgrade(url)
        made = make_engine(url)
        yield made
        made.dispose()
        return
    url = create_database("dunwell_audit")
    try:
        upgrade(url)
        made = make_engine(url)
        yield made
        made.dispose()
    finally:
        drop_database(url)


def write(engine: Engine, entry: audit.AuditEntry, at: datetime = T0) -> int:
    with engine.begin() as conn:
        return audit.record(conn, entry, at=at)


def rows(engine: Engine, **filters: object) -> list[audit.AuditRow]:
    with engine.connect() as conn:
        return audit.list_entries(conn, **filters)  # type: ignore[arg-type]


def entry(
    actor: str = "ops", action: str = "dunning.end", target: str = "invoice:in_1"
) -> audit.AuditEntry:
    return audit.AuditEntry(
        actor=actor,
        action=action,
        target=target,
        before={"status": "open"},
        after={"status": "ended", "amount": 1_000},
        request_id="req-1",
    )


def test_rows_read_back_as_written(engine: Engine) -> None:
    first = write(engine, entry())
    (row,) = rows(engine)
    assert row.id == first
    assert (row.actor, row.action, row.target, row.outcome) == (
        "ops",
        "dunning.end",
        "invoice:in_1",
        "done",
    )
    assert row.before == {"status": "open"}
    assert row.after == {"status": "ended", "amount": 1_000}
    assert row.request_id == "req-1"
    assert row.at == T0 and row.at.tzinfo is not None


def test_filters_and_pages(engine: Engine) -> None:
    ids = [
        write(engine, entry("ops", "dunning.end", "invoice:a"), T0),
        write(engine, entry("ana", "dunning.pause", "invoice:b"), T0 + timedelta(hours=1)),
        write(engine, entry("ops", "review.retry", "invoice:a"), T0 + timedelta(hours=2)),
        write(engine, entry("ops", "dunning.end", "invoice:c"), T0 + timedelta(hours=3)),
    ]
    assert [r.id for r in rows(engine, actor="ops")] == [ids[0], ids[2], ids[3]]
    assert [r.id for r in rows(engine, action="dunning.end")] == [ids[0], ids[3]]
    assert [r.id for r in rows(engine, target="invoice:a")] == [ids[0], ids[2]]
    window = rows(engine, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))
    assert [r.id for r in window] == [ids[1], ids[2]]
    page = rows(engine, limit=3)
    assert [r.id for r in page] == ids[:3]
    assert [r.id for r in rows(engine, after_id=page[-1].id, limit=3)] == ids[3:]


def test_a_time_that_is_not_utc_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="aware UTC"):
        write(engine, entry(), datetime(2026, 12, 1, 9, 0))
    with pytest.raises(ValueError, match="aware UTC"):
        write(engine, entry(), datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=1))))
    assert rows(engine) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'someone-else'",
        "UPDATE audit_log SET after = NULL",
        "UPDATE audit_log SET outcome = 'done' WHERE id = :id",
        "DELETE FROM audit_log WHERE id = :id",
        "DELETE FROM audit_log",
    ],
)
def test_the_database_refuses_to_change_or_delete_a_row(engine: Engine, statement: str) -> None:
    row_id = write(engine, entry())
    before = rows(engine)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text(statement), {"id": row_id})
    assert rows(engine) == before


@pytest.mark.postgres
def test_postgres_refuses_truncate() -> None:
    url = create_database("dunwell_audit_truncate")
    try:
        upgrade(url)
        engine = make_engine(url)
        write(engine, entry())
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE audit_log"))
        assert len(rows(engine)) == 1
        engine.dispose()
    finally:
        drop_database(url)
