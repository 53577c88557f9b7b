"""Revision 0003_billing_documents upgrades and downgrades cleanly on both backends."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from ledger.db import make_engine
from ledger.migrate import current, downgrade, upgrade
from tests.conftest import create_database, drop_database

TABLES = {"invoices", "invoice_lines", "invoice_notes", "document_counters", "tax_line_records"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    upgrade(url)
    assert TABLES <= _tables(url)
    downgrade(url, "0002_gateway_events")
    assert current(url) == "0002_gateway_events"
    assert not TABLES & _tables(url)
    upgrade(url)
    assert TABLES <= _tables(url)


def test_round_trip_sqlite(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'm.db'}")


def test_round_trip_postgresql() -> None:
    url = create_database("dunwell_inv_migration")
    try:
        _round_trip(url)
    finally:
        drop_database(url)
