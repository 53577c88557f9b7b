"""Alembic is the only way the schema is made: from empty, down to base and back up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect

from ledger.db import make_engine
from ledger.migrate import current, downgrade, head, upgrade
from ledger.posting import Ledger
from tests.conftest import create_database, drop_database
from tests.ledger.conftest import open_accounts, transfer

LEDGER_TABLES = {"ledger_accounts", "ledger_entries", "ledger_postings"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = create_database("dunwell_ledger_mig")
    try:
        yield url
    finally:
        drop_database(url)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_then_round_trip(empty_url: str) -> None:
    assert current(empty_url) is None
    assert not _tables(empty_url) & LEDGER_TABLES

    upgrade(empty_url)
    assert current(empty_url) == head()
    assert LEDGER_TABLES <= _tables(empty_url)

    engine = make_engine(empty_url)
    try:
        ledger = Ledger(engine)
        a, b = open_accounts(ledger, 2)
        ledger.post(transfer(a, b, 5))
    finally:
        engine.dispose()

    downgrade(empty_url, "base")
    assert current(empty_url) is None
    assert not _tables(empty_url) & (LEDGER_TABLES | {"ledger_entry_seals"})

    upgrade(empty_url, "0001_ledger")
    assert current(empty_url) == "0001_ledger"
    upgrade(empty_url)
    assert current(empty_url) == head()
    engine = make_engine(empty_url)
    try:
        ledger = Ledger(engine)
        a, b = open_accounts(ledger, 2)
        ledger.post(transfer(a, b, 5))
        assert ledger.trial_balance().balanced
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(empty_url: str) -> None:
    upgrade(empty_url)
    upgrade(empty_url)
    assert current(empty_url) == head()


def test_sqlite_parent_directory_is_created(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'ledger.db'}"
    upgrade(url)
    assert (tmp_path / "a" / "b" / "ledger.db").exists()
