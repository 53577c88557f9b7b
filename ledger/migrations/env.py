"""Alembic environment for every Dunwell revision (ledger, invoices, events, ...).

Configured from code by ``ledger.migrate``, which hands over an open connection in
``config.attributes["connection"]``; there is no alembic.ini.

Trap for later revisions: on SQLite, ``render_as_batch`` rebuilds a table to alter it,
and the rebuilt table loses its triggers. A revision that alters a ledger table on
SQLite must create that table's triggers again (see 0001_ledger for their DDL).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

# Every module defining tables, so the metadata (and autogenerate) sees them all.
import ledger.compliance_tables
import ledger.disputes.tables
import ledger.invoices.refund_tables
import ledger.invoices.tables
import ledger.models
import ledger.outbound.tables
import ledger.reconciliation.tables
from ledger.db import make_engine
from ledger.schema import Base

target_metadata = Base.metadata


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (type_ == "table" and name in ledger.models.SQLITE_ONLY_TABLES)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=_include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to the migration")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("Dunwell migrations run online only (ledger.migrate.upgrade)")
run_migrations_online()
