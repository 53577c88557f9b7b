"""The few places where PostgreSQL and SQLite need different SQL."""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

# SQLSTATEs PostgreSQL raises when a transaction lost a race and may simply be retried.
_PG_RETRYABLE = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def insert_or_ignore(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ``on_conflict_do_nothing`` on the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_retryable(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _PG_RETRYABLE:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message
