"""Gapless document numbers per issuer, series and year.

``DW-2026-000123`` (invoices), ``DW-CN-2026-000001`` (credit notes),
``DW-DN-2026-000001`` (debit notes). The counter row is incremented by an upsert in the
transaction that issues the document; its row lock is held until commit, so a
rolled-back transaction gives its number back and concurrent ones queue. Lock order
everywhere: invoice row, ledger accounts (in id order, by the ledger), counter row
last, so the lock every issuer's documents share is held for the shortest time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, text

_NEXT_NUMBER = text(
    "INSERT INTO document_counters (issuer, series, year, last_number) "
    "VALUES (:issuer, :series, :year, 1) "
    "ON CONFLICT (issuer, series, year) "
    "DO UPDATE SET last_number = document_counters.last_number + 1 "
    "RETURNING last_number"
)
_SERIES_LABEL = {"invoice": "", "credit_note": "CN-", "debit_note": "DN-"}


def next_number(conn: Connection, *, issuer: str, prefix: str, series: str, at: datetime) -> str:
    year = at.astimezone(UTC).year
    value = conn.execute(
        _NEXT_NUMBER, {"issuer": issuer, "series": series, "year": year}
    ).scalar_one()
    return f"{prefix}-{_SERIES_LABEL[series]}{year}-{int(value):06d}"
