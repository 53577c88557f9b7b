"""Reading the audit log back in tests."""

from __future__ import annotations

from typing import Any

from ledger.db import make_engine
from stores import audit


def audit_rows(database_url: str, **filters: Any) -> list[audit.AuditRow]:
    """Every audit row (filtered like ``stores.audit.list_entries``), oldest first."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return audit.list_entries(conn, limit=audit.MAX_PAGE, **filters)
    finally:
        engine.dispose()


def audit_count(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return len(audit.list_entries(conn, limit=audit.MAX_PAGE))
    finally:
        engine.dispose()
